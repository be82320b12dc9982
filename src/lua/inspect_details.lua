-- What Redis holds about a lock id, read atomically: the lock key's value and PTTL, the holder
-- record (KEYS[2], "TOKEN\nTEXT", written by the holder after it acquired) and the fencing
-- counter (KEYS[3]). The record is returned only while it names the token that holds the lock,
-- so a record left by an earlier holder never describes the current one.
-- Returns {value or false, pttl, holder text or false, counter or false}.
local v = redis.call('get', KEYS[1])
local rec = redis.call('get', KEYS[2])
local text = false
if v and rec and string.sub(rec, 1, #v + 1) == v .. '\n' then
  text = string.sub(rec, #v + 2)
end
return {v, redis.call('pttl', KEYS[1]), text, redis.call('get', KEYS[3])}
