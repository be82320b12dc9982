-- Auto-renew: makes the remaining lease at least ARGV[2] ms if the key is still ours. It never
-- shortens a lease (an extend may have made it longer than the renewal's length).
-- KEYS[1] lock key; ARGV[1] token, ARGV[2] lease ms.
-- Returns the lease remaining after the call (>= 1), 0 if not ours, -1 if the key has no expiry.
if redis.call('get', KEYS[1]) ~= ARGV[1] then
  return 0
end
local t = redis.call('pttl', KEYS[1])
if t == -1 then
  return -1
end
local want = tonumber(ARGV[2])
if t < want then
  redis.call('pexpire', KEYS[1], want)
  t = want
end
return t
