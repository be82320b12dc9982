-- Fenced acquire: the seed's SET NX PX plus INCR of the fencing counter, atomically, so a
-- fencing token is handed out exactly when the lock is. The INCR comes first: if it fails (the
-- counter holds something that is not a number) the script stops before setting anything.
-- The token is returned as the counter's text, never as a Lua number: Lua holds numbers as
-- doubles, which would round counters above 2^53.
-- KEYS[1] lock key, KEYS[2] fencing counter; ARGV[1] token, ARGV[2] lease ms.
-- Returns the fencing token (a string of digits), or 0 if the key exists (not acquired).
if redis.call('exists', KEYS[1]) == 1 then
  return 0
end
redis.call('incr', KEYS[2])
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
return redis.call('get', KEYS[2])
