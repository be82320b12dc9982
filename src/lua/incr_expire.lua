-- Debounce: INCR, and an expiry so counters do not pile up (the seed's never expire).
-- KEYS[1] counter; ARGV[1] expiry ms. Returns the new count.
local n = redis.call('incr', KEYS[1])
redis.call('pexpire', KEYS[1], ARGV[1])
return n
