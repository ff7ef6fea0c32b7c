--- What session buffers show, as text: lines of {text, highlight group} for transcript
--- items, the header line. Pure functions of what the daemon sent (and the key options);
--- buffer.lua puts them in buffers.
local config = require("codex_sessions.config")
local util = require("codex_sessions.util")

local M = {}

--- Command output lines start with this (and fold).
M.OUTPUT_PREFIX = "  │ "
local OUTPUT_PREFIX = M.OUTPUT_PREFIX

local function split_lines(text)
  return vim.split(text or "", "\n", { plain = true })
end

local function present(v)
  return v ~= nil and v ~= vim.NIL and v ~= ""
end


--- The keys that answer a request, as the user types them.
function M.keys_hint()
  local k = config.options.keys.session
  local parts = {}
  if k.accept then table.insert(parts, util.key_label(k.accept) .. " accept") end
  if k.accept_for_session then table.insert(parts, util.key_label(k.accept_for_session) .. " accept for session") end
  if k.decline then table.insert(parts, util.key_label(k.decline) .. " decline") end
  if k.send_normal then table.insert(parts, util.key_label(k.send_normal) .. " choose") end
  return table.concat(parts, " · ")
end

--- `text` as lines, the first after `first_prefix`, the others after `rest_prefix`.
function M.prefixed(text, first_prefix, rest_prefix, group)
  local out = {}
  for i, line in ipairs(split_lines(text)) do
    table.insert(out, { (i == 1 and first_prefix or rest_prefix) .. line, group })
  end
  return out
end

--- A command: its line with the exit code, then its output (or `running_output`).
function M.command(item, running_output)
  local out = {}
  local exit = item.exitCode
  local state
  if item.status == "declined" then
    state = "[declined]"
  elseif exit == nil or exit == vim.NIL then
    state = running_output and "[running]" or "[no exit code]"
  else
    state = "[exit " .. tostring(exit) .. "]"
  end
  local ok = exit == 0
  table.insert(out, { "$ " .. (item.command or "?") .. "  " .. state,
    ok and "CodexSessionsCommand" or "CodexSessionsCommandFailed" })
  local output = running_output or item.output
  if type(output) == "string" and output ~= "" then
    output = output:gsub("\n$", "")
    for _, line in ipairs(split_lines(output)) do
      table.insert(out, { OUTPUT_PREFIX .. line, "CodexSessionsOutput" })
    end
  end
  return out
end

--- Lines for one transcript item: list of {text, highlight group}.
function M.item(item)
  local kind = item.kind
  if kind == "user" then
    local out = { { "", nil } }
    vim.list_extend(out, M.prefixed(item.text, "> ", "  ", "CodexSessionsUser"))
    if item.steer == true then
      out[#out][1] = out[#out][1] .. "  (added to the running turn)"
    elseif item.via == "codexTui" then
      out[#out][1] = out[#out][1] .. "  (typed in Codex's terminal UI)"
    end
    return out
  elseif kind == "note" then
    return { { "", nil }, { "[" .. tostring(item.text or "") .. "]", "CodexSessionsNote" } }
  elseif kind == "agent" then
    return M.prefixed(item.text, "", "", "CodexSessionsAgent")
  elseif kind == "reasoning" then
    return M.prefixed(item.text, "(thinking) ", "           ", "CodexSessionsReasoning")
  elseif kind == "command" then
    return M.command(item)
  elseif kind == "fileChange" then
    local out = {}
    for _, change in ipairs(item.changes or {}) do
      table.insert(out, { string.format("~ %s (%s)", change.path, change.kind), "CodexSessionsFileChange" })
    end
    return out
  elseif kind == "request" then
    if item.decision ~= nil and item.decision ~= vim.NIL then
      return { { string.format("? %s: %s", item.requestId, item.decision), "CodexSessionsDecision" } }
    end
    if item.requestKind == "promptReview" then
      local k = config.options.keys.session
      local parts = {}
      if k.send_normal then table.insert(parts, util.key_label(k.send_normal) .. " review it") end
      if k.accept then table.insert(parts, util.key_label(k.accept) .. " accept") end
      if k.decline then table.insert(parts, util.key_label(k.decline) .. " decline") end
      table.insert(parts, ":CodexSessions pending")
      return {
        { string.format("? prompt review [%s]: %s", item.requestId,
          present(item.reason) and item.reason or "learn mode rewrote the prompt"), "CodexSessionsRequest" },
        { "  " .. table.concat(parts, " · "), "CodexSessionsHint" },
      }
    end
    local what = item.command
    if what == nil or what == vim.NIL then
      what = item.requestKind or "request"
      if item.changes and item.changes ~= vim.NIL then
        local paths = {}
        for _, c in ipairs(item.changes) do
          table.insert(paths, c.path)
        end
        what = what .. " " .. table.concat(paths, ", ")
      end
    end
    local reason = (item.reason and item.reason ~= vim.NIL) and ("  (" .. item.reason .. ")") or ""
    return {
      { string.format("? approval needed [%s]: %s%s", item.requestId, what, reason), "CodexSessionsRequest" },
      { "  " .. M.keys_hint(), "CodexSessionsHint" },
    }
  elseif kind == "error" then
    return M.prefixed(item.text, "! ", "  ", "CodexSessionsError")
  elseif kind == "status" then
    return { { "· " .. tostring(item.status), "CodexSessionsStatusLine" } }
  end
  return { { string.format("[%s] %s", tostring(kind), vim.json.encode(item)), "CodexSessionsStatusLine" } }
end

--- A token count in a few characters: 950, 1.2k, 12k, 3.4M.
function M.tokens(n)
  if type(n) ~= "number" then
    return ""
  elseif n < 1000 then
    return tostring(math.floor(n))
  elseif n < 10000 then
    return string.format("%.1fk", n / 1000)
  elseif n < 1000000 then
    return string.format("%dk", math.floor(n / 1000 + 0.5))
  end
  return string.format("%.1fM", n / 1000000)
end

--- The session's token usage so far as IN/OUT, or "" before any.
function M.usage(s)
  local usage = type(s.usage) == "table" and s.usage or {}
  local input, output = usage.inputTokens, usage.outputTokens
  if type(input) ~= "number" or type(output) ~= "number" or input + output == 0 then
    return ""
  end
  return M.tokens(input) .. "/" .. M.tokens(output)
end

--- The session's model and effort ("" when neither is known).
function M.model(s)
  local parts = {}
  if present(s.model) then table.insert(parts, tostring(s.model)) end
  if present(s.effort) then table.insert(parts, tostring(s.effort)) end
  return table.concat(parts, " ")
end

--- The session's own work tree {path, branch, base, merged}, or nil.
function M.tree(s)
  return type(s.worktree) == "table" and s.worktree or nil
end

--- Has the session a work tree of its own that is not merged yet?
function M.unmerged(s)
  local tree = M.tree(s)
  return tree ~= nil and tree.merged ~= true
end

--- What others changed too (or what it wrote outside its scope), in words.
function M.overlaps(s)
  return type(s.overlaps) == "table" and s.overlaps or {}
end

--- The notetaker and learn mode of the session, in words: "notes", "learn mode",
--- "learn mode (2 open gaps)", "learn mode ended: gaps resolved", "learn mode off"; ""
--- when neither was ever on.
function M.notes(s)
  local learn = type(s.learn) == "table" and s.learn or nil
  local gaps = learn and type(learn.openGaps) == "table" and #learn.openGaps or 0
  if learn and learn.on == true then
    return "learn mode" .. (gaps > 0 and string.format(" (%d open gap%s)", gaps, gaps == 1 and "" or "s") or "")
  end
  local parts = {}
  if s.notes == true then table.insert(parts, "notes") end
  if learn and learn.endedBecause == "resolved" then
    table.insert(parts, "learn mode ended: gaps resolved")
  elseif learn and learn.endedBecause == "off" then
    table.insert(parts, "learn mode off")
  end
  return table.concat(parts, "  ·  ")
end

--- "5h", "7d", "90m": a rate-limit window of `minutes`.
local function window_words(minutes)
  if type(minutes) ~= "number" then
    return "now"
  elseif minutes >= 1440 and minutes % 1440 == 0 then
    return (minutes / 1440) .. "d"
  elseif minutes >= 60 and minutes % 60 == 0 then
    return (minutes / 60) .. "h"
  end
  return minutes .. "m"
end

--- The account's rate limits as Codex reports them ({primary, secondary}, each with
--- usedPercent and windowDurationMins), as "limits used: 5h 42%, 7d 10%"; "" when
--- Codex reports none (an API key, not logged in).
function M.limits(limits)
  if type(limits) ~= "table" then
    return ""
  end
  local parts = {}
  for _, key in ipairs({ "primary", "secondary" }) do
    local w = limits[key]
    if type(w) == "table" and type(w.usedPercent) == "number" then
      table.insert(parts, string.format("%s %d%%", window_words(w.windowDurationMins), math.floor(w.usedPercent + 0.5)))
    end
  end
  return #parts > 0 and ("limits used: " .. table.concat(parts, ", ")) or ""
end

--- The header: what the session is and does, and what is wrong (storage, retries, error).
function M.header(s, connected)
  local status = s.status or "?"
  if not connected then
    status = status .. " (disconnected)"
  end
  local parts = { string.format("codex %s:%s", s.project and s.project.name or "?", s.name or "?"), status }
  if s.turns then table.insert(parts, "turns " .. tostring(s.turns)) end
  local model = M.model(s)
  if model ~= "" then table.insert(parts, model) end
  local usage = M.usage(s)
  if usage ~= "" then table.insert(parts, "tokens " .. usage) end
  local tree = M.tree(s)
  if tree then
    table.insert(parts, "tree " .. tostring(tree.branch) .. (M.unmerged(s) and "" or " (merged)"))
  end
  if s.role == "explorer" or s.role == "verifier" then table.insert(parts, s.role) end
  local overlaps = #M.overlaps(s)
  if overlaps > 0 then table.insert(parts, overlaps .. (overlaps == 1 and " overlap" or " overlaps")) end
  if type(s.pending) == "table" and #s.pending > 0 then table.insert(parts, #s.pending .. " pending") end
  local notes = M.notes(s)
  if notes ~= "" then table.insert(parts, notes) end
  if type(s.retry) == "table" then
    local attempt = present(s.retry.attempt) and tostring(s.retry.attempt) or "?"
    local why = present(s.retry.message) and (": " .. tostring(s.retry.message)) or ""
    table.insert(parts, "retrying (" .. attempt .. ")" .. vim.split(why, "\n", { plain = true })[1])
  end
  if present(s.storageError) then
    table.insert(parts, "not saved: " .. vim.split(tostring(s.storageError), "\n", { plain = true })[1])
  end
  if present(s.notesError) then
    table.insert(parts, "notes failed: " .. vim.split(tostring(s.notesError), "\n", { plain = true })[1])
  end
  if present(s.error) then
    table.insert(parts, "error: " .. vim.split(tostring(s.error), "\n", { plain = true })[1])
  end
  if s.project then table.insert(parts, s.project.root) end
  return table.concat(parts, "  ·  ")
end

local function one_line(text)
  return (tostring(text or ""):gsub("%s*\n%s*", " ⏎ "))
end

--- The list's rows for `sessions` (in list order), `numbers` mapping a session id to its
--- number (1..10). Columns that would be empty for every row are left out (the marks,
--- model, tokens, work tree). Returns the lines, a column header line, and for each
--- line the byte range of its status {first, last}.
function M.list_rows(sessions, numbers)
  local has = { mark = false, model = false, tokens = false, tree = false }
  local width = { name = 4, model = 5, tokens = 6 }
  for _, s in ipairs(sessions) do
    width.name = math.max(width.name, #s.name)
    has.mark = has.mark or #M.overlaps(s) > 0
    local model = type(s.model) == "string" and s.model or ""
    has.model = has.model or model ~= ""
    width.model = math.max(width.model, #model)
    local usage = M.usage(s)
    has.tokens = has.tokens or usage ~= ""
    width.tokens = math.max(width.tokens, #usage)
    has.tree = has.tree or M.tree(s) ~= nil
  end
  local function row(cells)
    local out = { string.format("%2s %-" .. width.name .. "s", cells.number, cells.name) }
    if has.mark then table.insert(out, cells.mark) end
    table.insert(out, string.format("%-11s %7s", cells.status, cells.elapsed))
    if has.model then table.insert(out, string.format("%-" .. width.model .. "s", cells.model)) end
    if has.tokens then table.insert(out, string.format("%" .. width.tokens .. "s", cells.tokens)) end
    if has.tree then table.insert(out, string.format("%-8s", cells.tree)) end
    table.insert(out, cells.headline)
    return table.concat(out, " ")
  end
  local head = row({ number = "#", name = "Name", mark = "!", status = "Status", elapsed = "Elapsed",
    model = "Model", tokens = "Tokens", tree = "Tree", headline = "Headline" })
  local lines, status_cols = {}, {}
  local status_at = 3 + width.name + 1 + (has.mark and 2 or 0)
  for _, s in ipairs(sessions) do
    local tree = M.tree(s)
    table.insert(lines, row({
      number = numbers[s.id] and tostring(numbers[s.id]) or "",
      name = s.name,
      mark = #M.overlaps(s) > 0 and "!" or " ",
      status = s.status,
      elapsed = util.elapsed(s),
      model = type(s.model) == "string" and s.model or "",
      tokens = M.usage(s),
      tree = tree and (M.unmerged(s) and "unmerged" or "merged") or "",
      headline = one_line(s.headline),
    }))
    table.insert(status_cols, { status_at, status_at + #s.status })
  end
  return lines, head, status_cols
end

return M
