-- The value and remaining lease of a key, read atomically. KEYS[1] lock key.
return {redis.call('get', KEYS[1]), redis.call('pttl', KEYS[1])}
