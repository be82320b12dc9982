-- A waiter's try (src/queue.c). The waiter queue of a lock id is a list of tokens in arrival
-- order (KEYS[2]) and a hash (KEYS[3]) of
--   token -> "live_until_ms|lease_ms|fenced|gen|chan"   a queued waiter
--   ""    -> "gen|fence|chan|token"                     how the current holder took the lock
-- where chan names the waiting handle's own grant channel and gen the try that wrote the entry.
-- The "" record lets a try tell "this call took or was handed the lock" from "the key holds a
-- token equal to ours that somebody else set" (a custom token), and it lets a call whose reply
-- was lost find out that it holds the lock.
--
-- KEYS: lock key, queue, waiter hash, fencing counter.
-- ARGV: token, lease ms, live ms (how long the entry counts without a refresh), fenced (0/1),
--       mode (0 = try and queue, 1 = try without queueing, 2 = leave), gen (this try),
--       first gen (of this acquire call), chan.
-- Returns {1, fencing token, pttl} when the lock is this call's, else {0, 0, holder's pttl}.
local cur = redis.call('get', KEYS[1])
local tok = ARGV[1]

local function unqueue()
  redis.call('lrem', KEYS[2], 0, tok)
  redis.call('hdel', KEYS[3], tok)
end

-- Keeps a key alive for at least ms; never shortens it. A key with no expiry (-1) was just made
-- by RPUSH or HSET and gets one.
local function keep(key, ms)
  local t = redis.call('pttl', key)
  if t == -1 or (t >= 0 and t < ms) then
    redis.call('pexpire', key, ms)
  end
end

if cur == tok then
  local rec = redis.call('hget', KEYS[3], '')
  if rec then
    local g, f, ch, who = string.match(rec, '^(%d+)|(%d+)|(%x+)|(.*)$')
    local n = tonumber(g)
    if who == tok and ch == ARGV[8] and n and n >= tonumber(ARGV[7]) and n <= tonumber(ARGV[6]) then
      unqueue()
      return {1, tonumber(f), redis.call('pttl', KEYS[1])}
    end
  end
end

if not cur and ARGV[5] ~= '2' then
  local f = 0
  if ARGV[4] == '1' then
    f = redis.call('incr', KEYS[4]) -- first: if it fails, nothing is set
  end
  redis.call('set', KEYS[1], tok, 'PX', ARGV[2])
  unqueue()
  redis.call('hset', KEYS[3], '', ARGV[6] .. '|' .. f .. '|' .. ARGV[8] .. '|' .. tok)
  keep(KEYS[3], tonumber(ARGV[2]))
  return {1, f, tonumber(ARGV[2])}
end

if ARGV[5] == '0' then
  local t = redis.call('time')
  local now = t[1] * 1000 + math.floor(t[2] / 1000)
  if redis.call('hexists', KEYS[3], tok) == 0 then
    redis.call('rpush', KEYS[2], tok)
  end
  redis.call('hset', KEYS[3], tok, string.format('%d|%s|%s|%s|%s', now + tonumber(ARGV[3]),
                                                  ARGV[2], ARGV[4], ARGV[6], ARGV[8]))
  local ttl = 2 * tonumber(ARGV[3])
  keep(KEYS[2], ttl)
  keep(KEYS[3], ttl)
else
  unqueue()
end
return {0, 0, redis.call('pttl', KEYS[1])}
