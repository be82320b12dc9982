-- Release with hand-off (src/queue.c; the entry formats are described in queue_try.lua).
-- If our token holds the key, the lock passes straight to the first queued waiter that is live
-- (its entry refreshed within its live time) and still subscribed to its grant channel: the
-- PUBLISH reaches nobody when the waiter's process died or it stopped waiting, and that waiter
-- is skipped. The grantee gets its own lease, a fencing token if it asked for one, and a
-- message naming the try (gen) whose entry was granted, so a late message cannot be mistaken
-- for a grant of a later try. Otherwise the key is deleted.
--
-- KEYS: lock key, queue, waiter hash, fencing counter.
-- ARGV: token, channel prefix (a waiter's channel is prefix .. chan), publish command.
-- Returns 0 if not ours, 1 released, 2 released and handed off.
if redis.call('get', KEYS[1]) ~= ARGV[1] then
  return 0
end
local t = redis.call('time')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('hdel', KEYS[3], '')
while true do
  local w = redis.call('lpop', KEYS[2])
  if not w then
    break
  end
  local info = redis.call('hget', KEYS[3], w)
  redis.call('hdel', KEYS[3], w)
  local live, lease, fenced, gen, chan
  if info then
    live, lease, fenced, gen, chan = string.match(info, '^(%d+)|(%d+)|([01])|(%d+)|(%x+)$')
  end
  if live and tonumber(live) > now then
    local f = 0
    if fenced == '1' then
      f = redis.pcall('incr', KEYS[4])
      if type(f) == 'table' then
        return redis.error_reply('fencing counter ' .. KEYS[4] .. ': ' .. f.err ..
                                 ' (the lock is still held by the releaser)')
      end
    end
    local rec = gen .. '|' .. f .. '|' .. chan .. '|' .. w
    if redis.call(ARGV[3], ARGV[2] .. chan, rec) > 0 then
      redis.call('set', KEYS[1], w, 'PX', lease)
      redis.call('hset', KEYS[3], '', rec)
      local ttl = redis.call('pttl', KEYS[3])
      if ttl == -1 or (ttl >= 0 and ttl < tonumber(lease)) then
        redis.call('pexpire', KEYS[3], lease)
      end
      return 2
    end
  end
end
redis.call('del', KEYS[1])
return 1
