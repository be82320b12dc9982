-- Extend: adds ARGV[2] ms to the remaining lease, with millisecond precision (the seed's
-- TTL/EXPIRE loses up to a second and fails on fractions).
-- KEYS[1] lock key; ARGV[1] token, ARGV[2] ms to add.
-- Returns the new PTTL, 0 if not ours, -1 if the key has no expiry (left unchanged).
if redis.call('get', KEYS[1]) ~= ARGV[1] then
  return 0
end
local t = redis.call('pttl', KEYS[1])
if t == -1 then
  return -1
end
if t < 0 then t = 0 end
local n = t + tonumber(ARGV[2])
redis.call('pexpire', KEYS[1], n)
return n
