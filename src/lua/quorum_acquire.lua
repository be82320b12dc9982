-- Redlock, fenced acquire, phase 1 (src/quorum.c): on one member, SET NX PX and, when it sets the
-- key, read that member's fencing counter in the same atomic step, so the value read is at least
-- every token stored here before the previous holder's key on this member went away.
-- KEYS[1] lock key, KEYS[2] fencing counter; ARGV[1] token, ARGV[2] lease ms.
-- Returns {0} if the key exists (held), or {1, counter} (counter "0" when there is none yet).
-- A counter that is not a decimal integer is an error, and nothing is set.
if redis.call('exists', KEYS[1]) == 1 then
  return {0}
end
local c = redis.call('get', KEYS[2])
if c == false then
  c = '0'
elseif not string.match(c, '^%d+$') or #c > 15 then
  return redis.error_reply('ERR fencing counter is not a non-negative integer below 10^15')
end
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, c}
