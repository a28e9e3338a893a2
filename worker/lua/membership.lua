-- The delivered-membership record of audiences: per user, the last applied action and its event's order.
-- KEYS: per audience, its membership hash, its size counter, its newest order key and its members' hashed
-- identifiers (4 keys each).
-- ARGV[1]: 'check' or 'record';
-- ARGV[2]: how many operations each audience has here, separated by spaces; ARGV[3]: the operations, audience
-- by audience, separated by spaces (two arguments in all: the client's cost is per argument, not per byte),
-- each its user's field (20 chars) .. its value: order key (25 chars: event ms + 10^13, 14 digits, then the
-- message id's tie-break + 10^10, 11 digits) .. 'a' (added) or 'd' (removed), then (record only, may be empty)
-- the user's hashed identifiers (hex digests, '|' and a type code: never a space), kept for current members so
-- an audience can be re-sent (resync).
-- Values written before event times existed hold a stream position tag (15-digit ms, 8-digit sequence) ..
-- action, 24 chars: they read as that ms with the lowest tie-break (their event time was their acceptance).
-- An operation applies when its order key is greater than the recorded one; an equal key is the same event
-- again (a no-op), unless its action differs (operations without event time or message id): then the later
-- arrival wins, as before event times existed.
-- check: returns a string with '1' per operation that would apply, '0' per one superseded (read only).
-- record: writes the values that apply (an added user's hashed identifiers beside, a removed user's dropped) and
-- returns each audience's net size afterwards; only a change of state
-- (absent or removed -> added, added -> removed) moves the size, so recording a batch twice changes nothing.
-- It also keeps the newest order key the record holds, which lets a check skip operations newer than it; a
-- record that predates that key (it has entries but no newest key) never gets one, as its entries' greatest
-- key is unknown: it is always checked in full.
-- One HMGET and a few HSETs of many fields per audience, not calls per row: redis.call per row was most of
-- the cost.
-- peek (its own key layout): KEYS, per audience, its membership hash and its newest order key (2 keys each);
-- returns per audience its newest order key, '-' for a record without one, or '' for no record at all. What a
-- check needs to know before it looks users up, for thousands of audiences in one call rather than two
-- commands each.
--#include slices

if ARGV[1] == 'peek' then
  local out = {}
  local newest_keys = {}
  for a = 1, #KEYS / 2 do newest_keys[a] = KEYS[2 * a] end
  local newests = mget(newest_keys)
  for a = 1, #KEYS / 2 do
    local newest = newests[a]
    if newest then
      out[a] = newest
    elseif redis.call('EXISTS', KEYS[2 * a - 1]) == 1 then
      out[a] = '-'
    else
      out[a] = ''
    end
  end
  return out
end
local FIELDLEN, KEYLEN = 20, 25
local VALUELEN = KEYLEN + 1
local ADDED = string.byte('a')
local mode = ARGV[1]
local audiences = #KEYS / 4

local function applies(new, old)
  if not old then return true end
  if #old == 24 then  -- written before event times: its position's ms, the lowest tie-break
    old = '1' .. string.sub(old, 3, 15) .. '10000000000' .. string.sub(old, -1)
  end
  -- Values are fixed-width order keys followed by the action, so whole values compare like their keys; only
  -- when the keys are equal does the action matter (equal values: the same event again).
  if new > old then return true end
  if new == old then return false end
  return string.sub(new, 1, KEYLEN) == string.sub(old, 1, KEYLEN)  -- same key, another action
end

-- Each audience's newest order key, read for all of them at once (record only) and kept up to date as the call
-- goes; the new values are written with one MSET at the end.
local newest_of, newest_out = {}, {}
-- Each audience's size, likewise read with one MGET (record only), moved as the call goes (an audience may come
-- twice) and written with one MSET at the end: inside this atomic script that is the INCRBY it replaces, without
-- a command per audience.
local size_of = {}

local function record(hash, size, newest, ids, fields, values, idents, olds)
  -- It says whether the newest key is known (a record without one predates it) and what to beat.
  local before = newest_of[newest]
  local newest_known = before or redis.call('EXISTS', hash) == 0
  local written = {}  -- field -> value set by this call (a repeated field sees its own earlier write)
  local pairs_out = {}
  local ident_of, touched = {}, {}  -- field -> its identifiers (added) or false (removed), last write wins
  local delta = 0
  local greatest = ''
  for i = 1, #fields do
    local field, value = fields[i], values[i]
    local old = written[field] or olds[i]
    if applies(value, old) then
      written[field] = value
      pairs_out[#pairs_out + 1] = field
      pairs_out[#pairs_out + 1] = value
      if value > greatest then greatest = value end
      local was_member = old and string.byte(old, -1) == ADDED
      local is_member = string.byte(value, -1) == ADDED
      if is_member and not was_member then delta = delta + 1 end
      if was_member and not is_member then delta = delta - 1 end
      if ident_of[field] == nil then touched[#touched + 1] = field end
      ident_of[field] = is_member and idents[i] ~= '' and idents[i] or false
    end
  end
  call_sliced('HSET', pairs_out, hash)
  local ids_out, gone = {}, {}
  for _, field in ipairs(touched) do
    if ident_of[field] then
      ids_out[#ids_out + 1] = field
      ids_out[#ids_out + 1] = ident_of[field]
    else
      gone[#gone + 1] = field
    end
  end
  call_sliced('HSET', ids_out, ids)
  call_sliced('HDEL', gone, ids)
  if newest_known and greatest ~= '' then
    greatest = string.sub(greatest, 1, KEYLEN)
    if not before or greatest > before then
      newest_of[newest] = greatest
      newest_out[newest] = greatest
    end
  end
  local now = size_of[size] + delta
  size_of[size] = now
  return now
end

local flags, sizes = {}, {}
if mode == 'record' then
  local newest_keys = {}
  for a = 1, audiences do newest_keys[a] = KEYS[4 * a - 1] end
  local newests = mget(newest_keys)
  for a = 1, audiences do newest_of[newest_keys[a]] = newests[a] end
  local size_keys = {}
  for a = 1, audiences do size_keys[a] = KEYS[4 * a - 2] end
  local stored = mget(size_keys)
  for a = 1, audiences do size_of[size_keys[a]] = tonumber(stored[a] or '0') end
end
local counts = {}
for count in string.gmatch(ARGV[2], '%S+') do counts[#counts + 1] = tonumber(count) end
-- The operations one by one: a plain search for each space (no pattern matching: a call holds thousands), and
-- each operation's parts cut straight from the text at their fixed widths (no string per whole operation).
local text, position = ARGV[3], 1
local find, sub = string.find, string.sub
local text_end = #text + 1
for a = 1, audiences do
  local count = counts[a]
  local fields, values, idents = {}, {}, {}
  for i = 1, count do
    local stop = find(text, ' ', position, true) or text_end
    fields[i] = sub(text, position, position + FIELDLEN - 1)
    values[i] = sub(text, position + FIELDLEN, position + FIELDLEN + VALUELEN - 1)
    idents[i] = sub(text, position + FIELDLEN + VALUELEN, stop - 1)
    position = stop + 1
  end
  local hash, size, newest, ids = KEYS[4 * a - 3], KEYS[4 * a - 2], KEYS[4 * a - 1], KEYS[4 * a]
  local olds = count > 0 and redis.call('HMGET', hash, unpack(fields)) or {}
  if mode == 'check' then
    for i = 1, count do flags[#flags + 1] = applies(values[i], olds[i]) and '1' or '0' end
  else
    sizes[a] = record(hash, size, newest, ids, fields, values, idents, olds)
  end
end
if mode == 'check' then return table.concat(flags) end
local pairs_out = {}
for key, value in pairs(newest_out) do
  pairs_out[#pairs_out + 1] = key
  pairs_out[#pairs_out + 1] = value
end
for key, value in pairs(size_of) do
  pairs_out[#pairs_out + 1] = key
  pairs_out[#pairs_out + 1] = value
end
call_sliced('MSET', pairs_out)
return sizes
