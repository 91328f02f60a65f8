-- Trigram indexes make "address contains …" searches fast on a large list (subscribers_email_trgm_idx).
-- pg_trgm ships with PostgreSQL (contrib) and is a trusted extension: the database owner may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
