import type { Socket } from 'node:dgram';
import { createSocket } from 'node:dgram';
import type { AddressInfo } from 'node:net';

/**
 * A real DNS server on a UDP port of 127.0.0.1 that answers TXT questions from `records` (name → the TXT
 * records there, each a string, split into 255-byte strings on the wire). A name it does not know gets
 * NXDOMAIN; a known name asked for another type gets an empty answer. `silent` makes it answer nothing.
 */
export interface DnsServer {
  /** `127.0.0.1:port`, for Resolver.setServers or the doctor's --dns. */
  address: string;
  records: Map<string, string[]>;
  silent: boolean;
  close(): Promise<void>;
}

const TXT = 16;
const NXDOMAIN = 3;

export async function startDnsServer(records: Record<string, string[]> = {}): Promise<DnsServer> {
  const socket: Socket = createSocket('udp4');
  const server: DnsServer = {
    address: '',
    records: new Map(Object.entries(records).map(([name, txt]) => [name.toLowerCase(), txt])),
    silent: false,
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
  socket.on('message', (query, peer) => {
    if (server.silent) return;
    const answer = respond(query, server.records);
    if (answer) socket.send(answer, peer.port, peer.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  server.address = `127.0.0.1:${(socket.address() as AddressInfo).port}`;
  return server;
}

/** The answer to one query (RFC 1035 §4): header, the question echoed, then TXT answers. */
function respond(query: Buffer, records: Map<string, string[]>): Buffer | undefined {
  if (query.length < 12 || query.readUInt16BE(4) !== 1) return undefined;
  const labels: string[] = [];
  let at = 12;
  while (at < query.length && query[at] !== 0) {
    const length = query[at] ?? 0;
    labels.push(query.subarray(at + 1, at + 1 + length).toString('latin1'));
    at += 1 + length;
  }
  const questionEnd = at + 5;
  if (questionEnd > query.length) return undefined;
  const type = query.readUInt16BE(at + 1);
  const name = labels.join('.').toLowerCase();
  const txt = records.get(name);
  const answers = type === TXT && txt ? txt.map(txtAnswer) : [];
  const header = Buffer.alloc(12);
  header.writeUInt16BE(query.readUInt16BE(0), 0);
  // QR=1, the query's opcode and RD, RA=1, and the response code.
  header.writeUInt16BE(0x8000 | (query.readUInt16BE(2) & 0x7900) | 0x0080 | (txt ? 0 : NXDOMAIN), 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(answers.length, 6);
  return Buffer.concat([header, query.subarray(12, questionEnd), ...answers]);
}

function txtAnswer(value: string): Buffer {
  const bytes = Buffer.from(value, 'utf8');
  const strings: Buffer[] = [];
  for (let i = 0; i < bytes.length || i === 0; i += 255) {
    const part = bytes.subarray(i, i + 255);
    strings.push(Buffer.from([part.length]), part);
  }
  const data = Buffer.concat(strings);
  const fixed = Buffer.alloc(12);
  fixed.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
  fixed.writeUInt16BE(TXT, 2);
  fixed.writeUInt16BE(1, 4); // class IN
  fixed.writeUInt32BE(60, 6); // TTL
  fixed.writeUInt16BE(data.length, 10);
  return Buffer.concat([fixed, data]);
}
