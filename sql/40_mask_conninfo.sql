-- replica_router SQL surface, part 4: mask_conninfo().
-- Options come back in libpq's order, values quoted, passwords as ********.
SELECT replica_router.mask_conninfo('host=10.0.0.1 port=5432 user=rr password=S3cret dbname=postgres');
SELECT replica_router.mask_conninfo('password=S3cret');
SELECT replica_router.mask_conninfo('host=10.0.0.1');
SELECT replica_router.mask_conninfo('host=10.0.0.1 password=''''');
SELECT replica_router.mask_conninfo('host=a,b port=5432,5433 password=S3cret target_session_attrs=standby');
SELECT replica_router.mask_conninfo(E'host=''a b'' application_name=''it\\''s'' password=''p a\\''ss''');
SELECT replica_router.mask_conninfo('postgresql://rr:S3cret@10.0.0.1:5433/postgres?application_name=app');
SELECT replica_router.mask_conninfo('postgresql://rr@10.0.0.1/postgres?password=S3cret');
SELECT replica_router.mask_conninfo('postgresql://rr:S3cret@%2Fvar%2Frun%2Fpostgresql/postgres');
SELECT replica_router.mask_conninfo('');
SELECT replica_router.mask_conninfo(NULL) IS NULL AS null_in_null_out;
-- Strings libpq cannot parse come back as a placeholder, never as given.
SELECT replica_router.mask_conninfo('host=10.0.0.1 password=S3cret port');
SELECT replica_router.mask_conninfo('host=10.0.0.1 password=''S3cret');
SELECT replica_router.mask_conninfo('nonsense=1 password=S3cret');
SELECT replica_router.mask_conninfo('postgresql://rr:S3cr%zz@10.0.0.1/postgres');
-- sslpassword (the client key's passphrase) is a secret too.
SELECT replica_router.mask_conninfo('host=10.0.0.1 sslkey=/etc/rr/client.key sslpassword=K3yPass');
-- Masking is idempotent and the result is a valid connection string.
SELECT replica_router.mask_conninfo(replica_router.mask_conninfo('host=10.0.0.1 user=rr password=S3cret'));
SELECT replica_router._conninfo_error(replica_router.mask_conninfo(E'host=''a b'' application_name=''it\\''s''')) IS NULL
       AS masked_parses;
