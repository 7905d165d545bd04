/**
 * The Lua scripts that keep the pool in Redis (docs/replicas.md, "Scripts"). Each mutating call
 * is one script: Redis runs it atomically, so that no two replicas ever see a key half changed,
 * and the script appends the changes it made to the change stream in the same step.
 *
 * Every script gets one key, KEYS[1] (the pool's key set), so that Redis Cluster routes it to the
 * pool's slot; the names of the other keys are built from the same hash-tagged prefix (ARGV[1])
 * and therefore live in that slot too. ARGV[2] is the time in epoch milliseconds, or "" for Redis
 * `TIME` (what production always passes); ARGV[3] bounds the change stream (XADD MAXLEN ~).
 * The script's own arguments follow from ARGV[4].
 *
 * A key is a hash (`<prefix>key:<key_hash>`) with short field names (docs/redis-layout.md), and
 * its status, packed, is kept beside it in `<prefix>status` by every script that changes it.
 * The ACTIVE keys of one (provider, family, group) are in two sorted sets: `ready` by last use
 * (equal scores order by member, i.e. key_hash), and `wait` by ready_at; a key moves from wait
 * to ready when a script looks and its time has come, as the in-memory SelectionIndex does. The
 * four groups, in lease order: trial keys without gpt4-32k ("t"), trial with ("t3"), others
 * without ("r"), others with ("r3"); embedding models skip the trial groups.
 */

/**
 * The version of what the scripts keep in Redis (docs/redis-layout.md, "Layout"). 2: a packed
 * status per key in `status`, change events that carry it, and each secret's fingerprint (`kf`).
 */
export const POOL_LAYOUT = 2;

/** Shared by every script: arguments, the key layout, indexing, events, lease expiry. */
const LIBRARY = `
local P = ARGV[1]
local now = tonumber(ARGV[2])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local MAXLEN = ARGV[3]
local LAYOUT_VERSION = '${POOL_LAYOUT}'
local events = {}

local function kkey(h) return P .. 'key:' .. h end
local function num(v) return tonumber(v) or 0 end

local function load(h)
  local r = redis.call('HGETALL', kkey(h))
  if #r == 0 then return nil end
  local e = {}
  for i = 1, #r, 2 do e[r[i]] = r[i + 1] end
  return e
end

local function families(e)
  local out = {}
  for f in string.gmatch(e.f or '', '[^,]+') do out[#out + 1] = f end
  return out
end

local function groupOf(trial, fams)
  local g = (trial == '1') and 't' or 'r'
  for _, f in ipairs(fams) do
    if f == 'gpt4-32k' then return g .. '3' end
  end
  return g
end

local function subKeys(provider, family, group)
  local base = provider .. ':' .. family .. ':' .. group
  return P .. 'ready:' .. base, P .. 'wait:' .. base
end

local function readyAt(e) return math.max(num(e.hu), num(e.cu)) end

local function unindex(h, e)
  local fams = families(e)
  local group = groupOf(e.tr, fams)
  for _, f in ipairs(fams) do
    local r, w = subKeys(e.p, f, group)
    redis.call('ZREM', r, h)
    redis.call('ZREM', w, h)
  end
end

-- Files an ACTIVE key in each of its families: ready (by last use) or waiting (by ready_at).
local function index(h, e)
  if e.st ~= 'active' then return end
  local fams = families(e)
  local group = groupOf(e.tr, fams)
  local at = readyAt(e)
  for _, f in ipairs(fams) do
    local r, w = subKeys(e.p, f, group)
    if at <= now then
      redis.call('ZADD', r, num(e.lu), h)
      redis.call('ZREM', w, h)
    else
      redis.call('ZADD', w, at, h)
      redis.call('ZREM', r, h)
    end
  end
end

-- A number as JSON: Redis's own decimal text when it is one (counters past 2^53 stay exact), else
-- the value read as a number.
local function jnum(v)
  if v and (string.find(v, '^%-?%d+$') or string.find(v, '^%-?%d+%.%d+$')) then return v end
  return string.format('%.17g', tonumber(v) or 0)
end

-- The secret's fingerprint (kf): 16 hex digits of its SHA-1, independent of the key hash, so that a
-- replica tells a configured key that is already here from another secret under the same hash
-- (a collision) without reading any secret back.
local function fingerprint(secret) return string.sub(redis.sha1hex(secret), 1, 16) end

-- A key's status packed as the replicas read it (key-fields.ts, statusFromPacked): one JSON array
-- in a fixed order, usage as [family, input, output, prompts, ...], then the secret's fingerprint;
-- never the secret. nil when the key is gone.
local function packed(h)
  local r = redis.call('HGETALL', kkey(h))
  if #r == 0 then return nil end
  local e, fams, usage = {}, {}, {}
  for i = 1, #r, 2 do
    local name = r[i]
    if string.sub(name, 3, 3) == ':' then
      local fam = string.sub(name, 4)
      local u = usage[fam]
      if not u then
        u = {'0', '0', '0'}
        usage[fam] = u
        fams[#fams + 1] = fam
      end
      local kind = string.sub(name, 1, 2)
      if kind == 'ui' then u[1] = r[i + 1] elseif kind == 'uo' then u[2] = r[i + 1] elseif kind == 'up' then u[3] = r[i + 1] end
    else
      e[name] = r[i + 1]
    end
  end
  local u = {}
  for _, fam in ipairs(fams) do
    local c = usage[fam]
    u[#u + 1] = cjson.encode(fam) .. ',' .. jnum(c[1]) .. ',' .. jnum(c[2]) .. ',' .. jnum(c[3])
  end
  return '[' .. cjson.encode(h) .. ',' .. cjson.encode(e.p or '') .. ',' .. cjson.encode(e.f or '') .. ',' ..
    cjson.encode(e.o or '') .. ',' .. (e.tr == '1' and '1' or '0') .. ',' .. cjson.encode(e.st or 'active') .. ',' ..
    cjson.encode(e.sr or '') .. ',' .. jnum(e.hu) .. ',' .. jnum(e.cu) .. ',' .. jnum(e.rl) .. ',' .. jnum(e.lu) .. ',' ..
    jnum(e.lc) .. ',' .. jnum(e.pc) .. ',' .. jnum(e.inf) .. ',' .. jnum(e.lec) .. ',' .. (e.pin == '1' and '1' or '0') ..
    ',[' .. table.concat(u, ',') .. '],' .. cjson.encode(e.kf or fingerprint(e.k or '')) .. ']'
end

-- Every change to a key's status goes through here: the packed status kept beside the key (what
-- a joining replica's snapshot reads) and the change stream's event are the same text, written in
-- the same atomic step.
local function emit(h, cause)
  local s = packed(h)
  if not s then return end
  redis.call('HSET', P .. 'status', h, s)
  events[#events + 1] = '["u",' .. cjson.encode(cause) .. ',' .. s .. ']'
end

local function emitRemoved(h, e)
  redis.call('HDEL', P .. 'status', h)
  events[#events + 1] = cjson.encode({'r', h, e.p, e.f or ''})
end

-- Appends this script's events to the change stream, at most 100 to an entry, each entry
-- numbered (n) so that a follower notices entries it missed.
local function flush()
  local i = 1
  while i <= #events do
    local chunk = '[' .. table.concat(events, ',', i, math.min(#events, i + 99)) .. ']'
    local n = redis.call('INCR', P .. 'seq')
    redis.call('XADD', P .. 'changes', 'MAXLEN', '~', MAXLEN, '*', 'n', n, 'e', chunk)
    i = i + 100
  end
  events = {}
end

-- Ends the leases whose time has passed (at most limit of them): in_flight falls once per lease,
-- whichever replica's script gets here first. Returns how many ended.
local function reap(limit)
  local due = redis.call('ZRANGEBYSCORE', P .. 'lease-deadlines', '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    redis.call('ZREM', P .. 'lease-deadlines', id)
    local owner = redis.call('HGET', P .. 'leases', id)
    redis.call('HDEL', P .. 'leases', id)
    if owner then
      local sp = string.find(owner, ' ', 1, true)
      local h, g = string.sub(owner, 1, sp - 1), string.sub(owner, sp + 1)
      if redis.call('HGET', kkey(h), 'g') == g then
        redis.call('HINCRBY', kkey(h), 'inf', -1)
        emit(h, 'lease_ended')
      end
    end
  end
  return #due
end

local REAP_LIMIT = 1000

local function groupsFor(embedding)
  if embedding == '1' then return {'r', 'r3'} end
  return {'t', 't3', 'r', 'r3'}
end

-- Moves the waiting keys whose ready_at has come into the ready set.
local function promote(r, w)
  local due = redis.call('ZRANGEBYSCORE', w, '-inf', now)
  if #due == 0 then return end
  for _, h in ipairs(due) do
    redis.call('ZADD', r, num(redis.call('HGET', kkey(h), 'lu')), h)
  end
  redis.call('ZREMRANGEBYSCORE', w, '-inf', now)
end

-- The key Lease would hand out now (or nil), whether any ACTIVE key is eligible, and the
-- lockout: the same sets answer Lease and GetLockoutPeriod, so they agree.
local function survey(provider, family, embedding)
  local any, nextAt = false, nil
  for _, group in ipairs(groupsFor(embedding)) do
    local r, w = subKeys(provider, family, group)
    promote(r, w)
    local top = redis.call('ZRANGE', r, 0, 0)
    if top[1] then return top[1], true, 0 end
    local first = redis.call('ZRANGE', w, 0, 0, 'WITHSCORES')
    if first[1] then
      any = true
      local at = tonumber(first[2])
      if not nextAt or at < nextAt then nextAt = at end
    end
  end
  if not any then return nil, false, 0 end
  return nil, true, math.max(0, nextAt - now)
end

local function create(h, p, secret, fams, org, trial, pinned)
  local g = redis.call('INCR', P .. 'gen')
  redis.call('HSET', kkey(h), 'h', h, 'k', secret, 'p', p, 'f', fams, 'o', org, 'tr', trial, 'pin', pinned,
    'st', 'active', 'sr', '', 'hu', 0, 'cu', 0, 'rl', 0, 'lu', 0, 'lc', 0, 'pc', 0, 'inf', 0, 'lec', 0, 'as', 0, 'g', g,
    'kf', fingerprint(secret))
  redis.call('ZADD', P .. 'keys', 0, h)
  redis.call('SREM', P .. 'removed', h)
  index(h, load(h))
end

local function base36(n)
  local digits = '0123456789abcdefghijklmnopqrstuvwxyz'
  local s = ''
  repeat
    local d = n % 36
    s = string.sub(digits, d + 1, d + 1) .. s
    n = math.floor(n / 36)
  until n == 0
  return s
end
`;

/**
 * Lease: provider, family, embedding ("1"/"0"), reuse delay, lease TTL, 16 random hex digits for
 * the lease id. → {"ok", secret, key_hash, provider, organization, lease_id, expires_at} |
 * {"busy", lockout_ms} | {"nokeys"}
 */
const LEASE = `
reap(REAP_LIMIT)
local h, any, lockout = survey(ARGV[4], ARGV[5], ARGV[6])
if not h then
  flush()
  if any then return {'busy', lockout} end
  return {'nokeys'}
end
local k = kkey(h)
local reuse, ttl = tonumber(ARGV[7]), tonumber(ARGV[8])
redis.call('HSET', k, 'lu', now, 'hu', now + reuse)
redis.call('HINCRBY', k, 'lec', 1)
redis.call('HINCRBY', k, 'inf', 1)
local e = load(h)
index(h, e)
local id = base36(redis.call('INCR', P .. 'lease-seq')) .. '-' .. ARGV[9]
redis.call('HSET', P .. 'leases', id, h .. ' ' .. e.g)
redis.call('ZADD', P .. 'lease-deadlines', now + ttl, id)
emit(h, 'leased')
flush()
return {'ok', e.k, h, e.p, e.o or '', id, tostring(now + ttl)}
`;

/** GetLockoutPeriod: provider, family, embedding. → {any_eligible (1/0), lockout_ms} */
const LOCKOUT = `
reap(REAP_LIMIT)
local _, any, lockout = survey(ARGV[4], ARGV[5], ARGV[6])
flush()
return {any and 1 or 0, lockout}
`;

/**
 * ReportRateLimit: key_hash, effect (none, revoke, cooldown, hold, withdraw_family, over_quota,
 * invalid), its argument (wait ms, family or reason). → {"ok", ready_at} | {"notfound"} | {"invalid"}
 */
const REPORT = `
reap(REAP_LIMIT)
local h, kind, arg = ARGV[4], ARGV[5], ARGV[6]
local e = load(h)
if not e then flush() return {'notfound'} end
if kind == 'invalid' then flush() return {'invalid'} end
local k = kkey(h)
if kind == 'withdraw_family' then
  local kept, had = {}, false
  for _, f in ipairs(families(e)) do
    if f == arg then had = true else kept[#kept + 1] = f end
  end
  if had then
    unindex(h, e)
    e.f = table.concat(kept, ',')
    redis.call('HSET', k, 'f', e.f)
    index(h, e)
    emit(h, 'family_withdrawn')
  end
elseif kind == 'over_quota' then
  if e.st == 'active' then
    unindex(h, e)
    e.st = 'over_quota'
    redis.call('HSET', k, 'st', 'over_quota', 'sr', arg)
    emit(h, 'over_quota')
  end
elseif kind == 'revoke' then
  if e.st ~= 'revoked' then
    unindex(h, e)
    e.st = 'revoked'
    redis.call('HSET', k, 'st', 'revoked', 'sr', arg)
    emit(h, 'revoked')
  end
elseif kind == 'cooldown' then
  e.rl = now
  e.cu = math.max(num(e.cu), now + tonumber(arg))
  redis.call('HSET', k, 'rl', e.rl, 'cu', e.cu)
  index(h, e)
  emit(h, 'reported')
elseif kind == 'hold' then
  local hu = now + tonumber(arg)
  if hu ~= num(e.hu) then
    e.hu = hu
    redis.call('HSET', k, 'hu', hu)
    index(h, e)
    emit(h, 'reported')
  end
end
flush()
return {'ok', readyAt(e)}
`;

/**
 * IncrementUsage: key_hash, family ("" when the model does not resolve for the key's provider),
 * input tokens, output tokens, lease id (""). → {"ok"} | {"notfound"} | {"invalid"}
 */
const USAGE = `
reap(REAP_LIMIT)
local h, fam, id = ARGV[4], ARGV[5], ARGV[8]
local e = load(h)
if not e then flush() return {'notfound'} end
if fam == '' then flush() return {'invalid'} end
local k = kkey(h)
redis.call('HINCRBY', k, 'pc', 1)
redis.call('HINCRBY', k, 'ui:' .. fam, ARGV[6])
redis.call('HINCRBY', k, 'uo:' .. fam, ARGV[7])
redis.call('HINCRBY', k, 'up:' .. fam, 1)
if id ~= '' and redis.call('HGET', P .. 'leases', id) == h .. ' ' .. e.g then
  redis.call('HDEL', P .. 'leases', id)
  redis.call('ZREM', P .. 'lease-deadlines', id)
  redis.call('HINCRBY', k, 'inf', -1)
end
emit(h, 'usage')
flush()
return {'ok'}
`;

/**
 * AddKeys ("add") and the configured keys at start ("merge"): the mode, then the keys as one JSON
 * text, a list of 8 strings per key (key_hash, provider, secret, families, organization, trial,
 * pinned, trial stated): one argument to send and decode instead of eight per key. A key already
 * here with the same secret and provider is a duplicate; another secret under its hash is a
 * collision and nothing is added. "merge" also leaves out keys an operator removed, and lets the
 * configuration decide the families and trial flag of a key it names, as the SQLite restore does
 * (src/storage/restore.ts); learned state is kept. One HMGET per key reads all it needs.
 * → {"ok", added, duplicates, skipped_removed} | {"collision", index}
 */
const ADD = `
reap(REAP_LIMIT)
local merge = ARGV[4] == 'merge'
local specs = cjson.decode(ARGV[5])
-- seen: key_hash -> {secret, provider} of a key already here or added by this batch.
local seen, fresh, known, current = {}, {}, {}, {}
local dups, skipped = 0, 0
for i, s in ipairs(specs) do
  local h, p, secret = s[1], s[2], s[3]
  local had = seen[h]
  if not had then
    local kv = redis.call('HMGET', kkey(h), 'k', 'p', 'f', 'tr', 'pin', 'st')
    if kv[1] then
      had = {kv[1], kv[2]}
      seen[h] = had
      current[h] = {p = kv[2], f = kv[3], tr = kv[4], pin = kv[5], st = kv[6]}
      known[#known + 1] = s
    end
  end
  if had then
    if had[1] ~= secret or had[2] ~= p then flush() return {'collision', i - 1} end
    dups = dups + 1
  elseif merge and redis.call('SISMEMBER', P .. 'removed', h) == 1 then
    skipped = skipped + 1
  else
    seen[h] = {secret, p}
    fresh[#fresh + 1] = s
  end
end
for _, s in ipairs(fresh) do
  create(s[1], s[2], s[3], s[4], s[5], s[6], s[7])
  emit(s[1], 'added')
end
if merge then
  for _, s in ipairs(known) do
    local h = s[1]
    local e = current[h]
    local fams, trial, pinned = e.f, e.tr, e.pin
    if s[7] == '1' then fams = s[4] end
    if s[8] == '1' then trial = s[6] end
    pinned = s[7]
    if fams ~= e.f or trial ~= e.tr or pinned ~= e.pin then
      unindex(h, e)
      e.f, e.tr, e.pin = fams, trial, pinned
      redis.call('HSET', kkey(h), 'f', fams, 'tr', trial, 'pin', pinned)
      index(h, e)
      emit(h, 'restored')
    end
  end
end
flush()
return {'ok', #fresh, dups, skipped}
`;

/** Ends a lease nobody will use (its waiter left while it was granted): lease id. → {"ok"} */
const END_LEASE = `
reap(REAP_LIMIT)
local id = ARGV[4]
local owner = redis.call('HGET', P .. 'leases', id)
if owner then
  redis.call('HDEL', P .. 'leases', id)
  redis.call('ZREM', P .. 'lease-deadlines', id)
  local sp = string.find(owner, ' ', 1, true)
  local h, g = string.sub(owner, 1, sp - 1), string.sub(owner, sp + 1)
  if redis.call('HGET', kkey(h), 'g') == g then
    redis.call('HINCRBY', kkey(h), 'inf', -1)
    emit(h, 'lease_ended')
  end
end
flush()
return {'ok'}
`;

/** RemoveKey: key_hash. → {"ok"} | {"notfound"} */
const REMOVE = `
reap(REAP_LIMIT)
local h = ARGV[4]
local e = load(h)
if not e then flush() return {'notfound'} end
unindex(h, e)
redis.call('DEL', kkey(h))
redis.call('ZREM', P .. 'keys', h)
redis.call('SADD', P .. 'removed', h)
emitRemoved(h, e)
flush()
return {'ok'}
`;

/** DisableKey: key_hash, state, reason. → {"ok", status fields} | {"notfound"} */
const DISABLE = `
reap(REAP_LIMIT)
local h = ARGV[4]
local e = load(h)
if not e then flush() return {'notfound'} end
unindex(h, e)
redis.call('HSET', kkey(h), 'st', ARGV[5], 'sr', ARGV[6], 'as', redis.call('INCR', P .. 'admin-stamp'))
emit(h, 'disabled')
flush()
return {'ok', packed(h)}
`;

/** EnableKey: key_hash. → {"ok", status fields} | {"notfound"} */
const ENABLE = `
reap(REAP_LIMIT)
local h = ARGV[4]
local e = load(h)
if not e then flush() return {'notfound'} end
redis.call('HSET', kkey(h), 'as', redis.call('INCR', P .. 'admin-stamp'))
if e.st ~= 'active' then
  e.st = 'active'
  redis.call('HSET', kkey(h), 'st', 'active', 'sr', '')
  index(h, e)
  emit(h, 'enabled')
end
flush()
return {'ok', packed(h)}
`;

/**
 * RecheckKeys: key hashes (none: every key). All or nothing: an unknown hash marks nothing.
 * → {"ok", marked} | {"notfound", key_hash}
 */
const MARK_FOR_CHECK = `
reap(REAP_LIMIT)
local hs = {}
if not ARGV[4] then
  hs = redis.call('ZRANGE', P .. 'keys', 0, -1)
else
  local seen = {}
  local i = 4
  while ARGV[i] do
    local h = ARGV[i]
    if redis.call('EXISTS', kkey(h)) == 0 then flush() return {'notfound', h} end
    if not seen[h] then
      seen[h] = true
      hs[#hs + 1] = h
    end
    i = i + 1
  end
end
local marked = 0
for _, h in ipairs(hs) do
  local st, lc = unpack(redis.call('HMGET', kkey(h), 'st', 'lc'))
  if st ~= 'disabled' then
    marked = marked + 1
    if num(lc) ~= 0 then
      redis.call('HSET', kkey(h), 'lc', 0)
      emit(h, 'check_requested')
    end
  end
end
flush()
return {'ok', marked}
`;

/**
 * The key checker's finding: key_hash, secret and admin stamp the check started with, families
 * ("" none), trial ("", "0", "1"), organization to bind ("" none), state ("", active, revoked,
 * over_quota), reason, then (key_hash, organization) per clone. Dropped when the key left, was
 * replaced, is DISABLED or an operator acted on it since.
 * → {"applied", clone hashes...} | {"dropped", why}
 */
const FINDING = `
reap(REAP_LIMIT)
local h = ARGV[4]
local e = load(h)
if not e or e.k ~= ARGV[5] then flush() return {'dropped', 'removed'} end
if e.st == 'disabled' then flush() return {'dropped', 'disabled'} end
if e.as ~= ARGV[6] then flush() return {'dropped', 'operator_changed'} end
local unbound = (e.o or '') == ''
unindex(h, e)
if ARGV[7] ~= '' and e.pin ~= '1' then e.f = ARGV[7] end
if ARGV[8] ~= '' then e.tr = ARGV[8] end
if unbound and ARGV[9] ~= '' then e.o = ARGV[9] end
if ARGV[10] == 'active' then
  e.st, e.sr = 'active', ''
elseif ARGV[10] ~= '' then
  e.st, e.sr = ARGV[10], ARGV[11]
end
redis.call('HSET', kkey(h), 'f', e.f, 'tr', e.tr, 'o', e.o, 'st', e.st, 'sr', e.sr, 'lc', math.max(1, now))
index(h, e)
emit(h, 'checked')
local out = {'applied'}
if unbound then
  local i = 12
  while ARGV[i] do
    local ch = ARGV[i]
    if redis.call('EXISTS', kkey(ch)) == 0 then
      create(ch, e.p, e.k, e.f, ARGV[i + 1], e.tr, e.pin)
      emit(ch, 'added')
      out[#out + 1] = ch
    end
    i = i + 2
  end
end
flush()
return out
`;

/**
 * A page of keys for a replica's read model: after (""), count. Writes nothing. The stream's last
 * entry id and number come from the same instant as the page. The statuses are the packed ones
 * kept beside the keys, read with one HMGET and made one JSON list (the replica parses it once);
 * a key without one (written by a build that kept none) is packed here. The page's last key_hash
 * comes apart from it, so that the replica asks for the next page before it decodes this one and
 * Redis reads while the replica decodes.
 * → {last_stream_id, last_number, keys_in_page, last_key_hash, "[packed status, ...]"}
 */
const SNAPSHOT = `
local after = ARGV[4]
local hs = redis.call('ZRANGEBYLEX', P .. 'keys', after == '' and '-' or '(' .. after, '+', 'LIMIT', 0, tonumber(ARGV[5]))
local last = redis.call('XREVRANGE', P .. 'changes', '+', '-', 'COUNT', 1)
local out = {}
if #hs > 0 then
  local ss = redis.call('HMGET', P .. 'status', unpack(hs))
  for i = 1, #hs do
    local s = ss[i] or packed(hs[i])
    if s then out[#out + 1] = s end
  end
end
return {last[1] and last[1][1] or '0-0', redis.call('GET', P .. 'seq') or '0', #hs, hs[#hs] or '', '[' .. table.concat(out, ',') .. ']'}
`;

/**
 * The layout of the pool in Redis (docs/redis-layout.md, "Layout"): its version, set here when
 * the pool is empty. → the version, "1" for a pool written before versions were kept.
 */
const LAYOUT = `
local v = redis.call('GET', P .. 'layout')
if v then return v end
if redis.call('EXISTS', P .. 'keys') == 0 then
  redis.call('SET', P .. 'layout', LAYOUT_VERSION)
  return LAYOUT_VERSION
end
return '1'
`;

/**
 * Converts a page of a layout-1 pool: adds each key's fingerprint and packs its status beside it, and marks the
 * layout current after the last page. Idempotent: replicas converting at once write the same.
 * after (""), count. → {keys_in_page, last_key_hash}
 */
const CONVERT = `
local hs = redis.call('ZRANGEBYLEX', P .. 'keys', ARGV[4] == '' and '-' or '(' .. ARGV[4], '+', 'LIMIT', 0, tonumber(ARGV[5]))
for _, h in ipairs(hs) do
  local secret = redis.call('HGET', kkey(h), 'k')
  if secret then
    redis.call('HSET', kkey(h), 'kf', fingerprint(secret))
    redis.call('HSET', P .. 'status', h, packed(h))
  end
end
if #hs < tonumber(ARGV[5]) then redis.call('SET', P .. 'layout', LAYOUT_VERSION) end
return {#hs, hs[#hs] or ''}
`;

/**
 * Ends due leases, then says where the change stream is: what a read that must see the latest
 * state waits for, and what a replica's expiry timer runs.
 * → {last_number, more_due (1/0), ms_until_next_expiry (-1: none)}
 */
const SYNC = `
local ended = reap(REAP_LIMIT)
flush()
local nextAt = redis.call('ZRANGE', P .. 'lease-deadlines', 0, 0, 'WITHSCORES')
local untilNext = -1
if nextAt[1] then untilNext = math.max(0, tonumber(nextAt[2]) - now) end
return {redis.call('GET', P .. 'seq') or '0', ended == REAP_LIMIT and 1 or 0, untilNext}
`;

/** What the checker needs of a key: key_hash. → {secret, provider, organization, trial, pinned, last_checked, admin_stamp, state} | {} */
const SUBJECT = `
local e = load(ARGV[4])
if not e then return {} end
return {e.k, e.p, e.o, e.tr, e.pin, e.lc, e.as, e.st}
`;

const body = (script: string) => LIBRARY + script;

/** The scripts by command name (ioredis defineCommand: EVALSHA, and EVAL when Redis lacks the script). */
export const POOL_SCRIPTS = {
  kpLease: body(LEASE),
  kpLockout: body(LOCKOUT),
  kpReport: body(REPORT),
  kpUsage: body(USAGE),
  kpAdd: body(ADD),
  kpEndLease: body(END_LEASE),
  kpRemove: body(REMOVE),
  kpDisable: body(DISABLE),
  kpEnable: body(ENABLE),
  kpMarkForCheck: body(MARK_FOR_CHECK),
  kpFinding: body(FINDING),
  kpSnapshot: body(SNAPSHOT),
  kpLayout: body(LAYOUT),
  kpConvert: body(CONVERT),
  kpSync: body(SYNC),
  kpSubject: body(SUBJECT),
} as const;

export type PoolScriptName = keyof typeof POOL_SCRIPTS;
