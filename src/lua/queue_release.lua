-- Release with hand-off (src/queue.c; the entry formats are described in queue_try.lua).
-- If our token holds the key, the lock passes straight to the first queued waiter that is live
-- (its entry refreshed within its live time) and subscribed to its grant channel on this very
-- server; a waiter whose process died or that stopped waiting has no subscriber left and is
-- skipped. The subscribers are counted before anything is published (PUBSUB SHARDNUMSUB, or
-- NUMSUB for a SUBSCRIBE, count this server's own and no pattern subscriber), and the grant is
-- published only to a waiter counted so: replication carries PUBLISH and SPUBLISH on to the
-- replicas, and a Cluster carries PUBLISH to every node, so a waiter subscribed anywhere else (a
-- replica, or a demoted master that kept its subscribers, after a failover) would still receive
-- a grant that PUBLISH's own count of 0 then made us skip: two holders. A server that refuses
-- PUBSUB in scripts is left to PUBLISH's count. The grantee gets its own lease, a fencing token
-- if it asked for one, and the message "gen|fence|chan" naming the try whose entry was granted,
-- so a late message cannot be mistaken for a grant of a later try. The message carries no
-- token. Otherwise the key is deleted. The fencing counter is checked before anything changes,
-- so a broken counter fails the release with nothing done.
--
-- KEYS: lock key, queue, waiter hash, fencing counter, and optionally the holder record (deleted
--       with the hold it describes; see src/holder.c).
-- ARGV: token, channel prefix (a waiter's channel is prefix .. chan).
-- Returns 0 if not ours, 1 released, 2 released and handed off.
if redis.call('get', KEYS[1]) ~= ARGV[1] then
  return 0
end
local c = redis.call('get', KEYS[4])
if c and not string.match(c, '^%-?%d+$') then
  return redis.error_reply('fencing counter ' .. KEYS[4] .. ' is not an integer (nothing was ' ..
                           'changed: the lock is still held by the releaser)')
end
local t = redis.call('time')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
if KEYS[5] then
  redis.call('del', KEYS[5])
end
while true do
  local w = redis.call('lpop', KEYS[2])
  if not w then
    break
  end
  local info = redis.call('hget', KEYS[3], w)
  redis.call('hdel', KEYS[3], w)
  local live, lease, fenced, gen, chan, pub
  if info then
    live, lease, fenced, gen, chan, pub =
      string.match(info, '^(%d+)|(%d+)|([01])|(%d+)|(%x+)|([sp])$')
  end
  if live and tonumber(live) > now then
    local f = '0'
    if fenced == '1' then
      local r = redis.pcall('incr', KEYS[4])
      if type(r) == 'table' and r.err then
        return redis.error_reply('fencing counter ' .. KEYS[4] .. ': ' .. r.err ..
                                 ' (the lock is still held by the releaser)')
      end
      f = redis.call('get', KEYS[4])
    end
    local msg = gen .. '|' .. f .. '|' .. chan
    local here = redis.pcall('pubsub', pub == 's' and 'shardnumsub' or 'numsub', ARGV[2] .. chan)
    local n = 0
    if type(here) ~= 'table' or here.err or (tonumber(here[2]) or 0) > 0 then
      n = redis.pcall(pub == 's' and 'spublish' or 'publish', ARGV[2] .. chan, msg)
    end
    if type(n) == 'number' and n > 0 then
      redis.call('set', KEYS[1], w, 'PX', lease)
      redis.call('hset', KEYS[3], '',
                 string.format('%s|%d|%s', msg, now + tonumber(lease), w))
      local ttl = redis.call('pttl', KEYS[3])
      if ttl == -1 or (ttl >= 0 and ttl < tonumber(lease)) then
        redis.call('pexpire', KEYS[3], lease)
      end
      return 2
    end
  end
end
redis.call('hdel', KEYS[3], '')
redis.call('del', KEYS[1])
return 1
