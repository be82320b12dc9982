-- Redlock, fenced acquire, phase 2 (src/quorum.c): on a member where phase 1 set our key, store
-- the fencing token t = 1 + the largest counter the majority read, if the key is still ours.
-- The counter only grows: counter = max(counter, t).
-- KEYS[1] lock key, KEYS[2] fencing counter; ARGV[1] token, ARGV[2] t.
-- Returns 1 if stored (or already at least t), 0 if the key no longer holds our token.
if redis.call('get', KEYS[1]) ~= ARGV[1] then
  return 0
end
local c = redis.call('get', KEYS[2])
if c == false or not string.match(c, '^%d+$') or tonumber(c) < tonumber(ARGV[2]) then
  redis.call('set', KEYS[2], ARGV[2])
end
return 1
