-- A waiter's try (src/queue.c). The waiter queue of a lock id is a list of tokens in arrival
-- order (KEYS[2]) and a hash (KEYS[3]) of
--   token -> "live_until_ms|lease_ms|fenced|gen|chan|pub"   a queued waiter
--   ""    -> "gen|fence|chan|expires_ms|token"              how the current holder took it
-- chan names the waiting handle's own grant channel (the prefix is the releaser's), pub how it
-- is subscribed ('s' SSUBSCRIBE, 'p' SUBSCRIBE), gen the try that wrote the entry, expires_ms
-- when (Redis TIME) the lease so granted ends. The "" record lets a try tell "this call took or
-- was handed the lock" from "the key holds a token equal to ours that somebody else set" (a
-- custom token, or our own grant that expired and was set again by another holder), and it lets
-- a call whose reply was lost find out that it holds the lock. Fencing tokens travel as text:
-- Lua numbers are doubles and would round large counters.
--
-- KEYS: lock key, queue, waiter hash, fencing counter.
-- ARGV: token, lease ms, live ms (how long the entry counts without a refresh), fenced (0/1),
--       mode (0 = try and queue, 1 = try without queueing, 2 = leave), gen (this try),
--       first gen (of this acquire call), chan, pub.
-- Returns {1, fencing token, pttl} when the lock is this call's, else {0, '0', holder's pttl}.
local cur = redis.call('get', KEYS[1])
local tok = ARGV[1]
local t = redis.call('time')
local now = t[1] * 1000 + math.floor(t[2] / 1000)

local function unqueue()
  redis.call('lrem', KEYS[2], 0, tok)
  redis.call('hdel', KEYS[3], tok)
end

-- Keeps a key alive for at least ms; never shortens it. A key with no expiry (-1) was just made
-- by RPUSH or HSET and gets one.
local function keep(key, ms)
  local ttl = redis.call('pttl', key)
  if ttl == -1 or (ttl >= 0 and ttl < ms) then
    redis.call('pexpire', key, ms)
  end
end

if cur == tok then
  local rec = redis.call('hget', KEYS[3], '')
  if rec then
    local g, f, ch, exp, who = string.match(rec, '^(%d+)|(%d+)|(%x+)|(%d+)|(.*)$')
    local n = tonumber(g)
    if who == tok and ch == ARGV[8] and n and n >= tonumber(ARGV[7]) and
       n <= tonumber(ARGV[6]) and tonumber(exp) > now then
      unqueue()
      return {1, f, redis.call('pttl', KEYS[1])}
    end
  end
end

if not cur and ARGV[5] ~= '2' then
  local f = '0'
  if ARGV[4] == '1' then
    redis.call('incr', KEYS[4]) -- first: if it fails, nothing is set
    f = redis.call('get', KEYS[4])
  end
  local lease = tonumber(ARGV[2])
  redis.call('set', KEYS[1], tok, 'PX', ARGV[2])
  unqueue()
  redis.call('hset', KEYS[3], '',
             string.format('%s|%s|%s|%d|%s', ARGV[6], f, ARGV[8], now + lease, tok))
  keep(KEYS[3], lease)
  return {1, f, lease}
end

if ARGV[5] == '0' then
  -- Membership is the list's: an entry whose list expired under it (a long pause) goes back in.
  if not redis.call('lpos', KEYS[2], tok) then
    redis.call('rpush', KEYS[2], tok)
  end
  redis.call('hset', KEYS[3], tok, string.format('%d|%s|%s|%s|%s|%s', now + tonumber(ARGV[3]),
                                                  ARGV[2], ARGV[4], ARGV[6], ARGV[8], ARGV[9]))
  local ttl = 2 * tonumber(ARGV[3])
  keep(KEYS[2], ttl)
  keep(KEYS[3], ttl)
else
  unqueue()
end
return {0, '0', redis.call('pttl', KEYS[1])}
