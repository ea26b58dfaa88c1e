-- Lists show at most a quarter of an imported key (`keys::format::display_prefix`), so that
-- whoever may list keys never sees most of a short secret. Keys imported in plaintext before
-- that rule kept their first 12 characters, which for a 16-character key left 4 to guess. The
-- key's length is not stored, so every such prefix is cut to 4 (a quarter of the shortest key
-- one can import). A 12-character prefix may also come from a key of 48 characters or more
-- imported since: it is cut too, which only shows less. Our own keys (`kw_live_`, `kw_test_`)
-- and imported hashes (whose prefix the importer chose) are left as they are.
update api_key set display_prefix = substr(display_prefix, 1, 4)
where hash_algorithm = 'hmac-sha256'
  and length(display_prefix) = 12
  and substr(display_prefix, 1, 8) not in ('kw_live_', 'kw_test_');
