-- Task secrets are stored sealed (ChaCha20-Poly1305, see src/secrets.rs):
-- `sealed:v1:<key id>:<base64>` text instead of a JSON document. Values
-- written before this change are plaintext JSON; every start re-seals them
-- with the configured key, and a worker refuses to run a task whose secrets
-- are not sealed.
ALTER TABLE tasks ALTER COLUMN secrets TYPE text USING secrets::text;
