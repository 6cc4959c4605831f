-- Robot / API keys (`pavilion token create`). Only the SHA-256 of a key's
-- secret is kept (the secret is 256 random bits: a slow hash would add
-- nothing); scopes are a JSON array of grant strings; times are Unix ms.
-- Revoked keys stay (bounded, the oldest pruned) so `token list --all`
-- can say when; a live key's name is unique, a revoked one's may return.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NULL,
    revoked_at BIGINT NULL
);
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (name) WHERE revoked_at IS NULL;
CREATE INDEX api_keys_revoked ON api_keys (revoked_at);

-- The token issuer's signing keys (ES256, PKCS#8 PEM), shared by every
-- replica so a token one issues every other accepts.
CREATE TABLE token_signing_keys (
    kid TEXT PRIMARY KEY,
    private_pem TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
