-- replica_router SQL surface, part 10: ALTER EXTENSION UPDATE.
-- Version 1.0 updated to the current version must equal a fresh install of
-- it: same member objects, definitions, privileges and comments.
\set SHOW_CONTEXT never

-- What makes up the installed extension, one text per member object.
CREATE FUNCTION public.rr_fingerprint() RETURNS SETOF text LANGUAGE sql AS $$
    WITH members AS (
        SELECT d.classid, d.objid
          FROM pg_depend d JOIN pg_extension e ON d.refobjid = e.oid
         WHERE e.extname = 'replica_router' AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e')
    SELECT pg_describe_object(m.classid, m.objid, 0) || ' | ' || coalesce(
             CASE m.classid
               WHEN 'pg_proc'::regclass THEN
                 (SELECT pg_get_functiondef(p.oid) || ' acl ' || coalesce(p.proacl::text, 'default')
                    FROM pg_proc p WHERE p.oid = m.objid AND p.prokind <> 'a')
               WHEN 'pg_class'::regclass THEN
                 (SELECT c.relkind::text || ' acl ' || coalesce(c.relacl::text, 'default')
                         || ' columns ' || (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                                                              || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                                                              || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), ''),
                                                              ', ' ORDER BY a.attnum)
                                              FROM pg_attribute a
                                              LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                                             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped)
                         || coalesce(' view ' || pg_get_viewdef(c.oid), '')
                         || coalesce(' constraints ' || (SELECT string_agg(pg_get_constraintdef(k.oid), '; ' ORDER BY k.conname)
                                                           FROM pg_constraint k WHERE k.conrelid = c.oid), '')
                    FROM pg_class c WHERE c.oid = m.objid)
               WHEN 'pg_type'::regclass THEN
                 (SELECT format_type(t.oid, NULL) || ' ' || t.typtype::text FROM pg_type t WHERE t.oid = m.objid)
             END, '')
           || coalesce(' comment ' || obj_description(m.objid, m.classid::regclass::text), '')
      FROM members m
$$;

SELECT extversion AS fresh_version FROM pg_extension WHERE extname = 'replica_router';
CREATE TABLE public.rr_fresh AS SELECT * FROM public.rr_fingerprint() AS f(line);
SELECT count(*) > 50 AS many_members FROM public.rr_fresh;

DROP EXTENSION replica_router;
CREATE EXTENSION replica_router VERSION '1.0';
SELECT extversion AS installed FROM pg_extension WHERE extname = 'replica_router';
-- 1.0 data survives the update.
SELECT name FROM replica_router.add_replica('kept', 'host=10.0.0.7 port=5432', weight => 7);
-- The current library serves 1.0's SQL objects.
SELECT node, role FROM replica_router.recommend('write');
ALTER EXTENSION replica_router UPDATE;
SELECT extversion AS updated_to FROM pg_extension WHERE extname = 'replica_router';
SELECT name, weight FROM replica_router.nodes;
SELECT replica_router.remove_replica('kept');

-- Differences between the updated and the fresh extension: none.
(SELECT 'only fresh: ' || line FROM public.rr_fresh EXCEPT SELECT 'only fresh: ' || line FROM public.rr_fingerprint() AS f(line))
UNION ALL
(SELECT 'only updated: ' || line FROM public.rr_fingerprint() AS f(line) EXCEPT SELECT 'only updated: ' || line FROM public.rr_fresh)
ORDER BY 1;

-- The updated extension works: recommend() and its new errors.
SELECT node, role FROM replica_router.recommend('write');
SELECT replica_router.add_replica('w', 'host=10.0.0.8', weight => NULL);

DROP TABLE public.rr_fresh;
DROP FUNCTION public.rr_fingerprint();
