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
    return out
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

--- The header: what the session is and does, and what is wrong (storage, retries, error).
function M.header(s, connected)
  local status = s.status or "?"
  if not connected then
    status = status .. " (disconnected)"
  end
  local parts = { string.format("codex %s:%s", s.project and s.project.name or "?", s.name or "?"), status }
  if s.turns then table.insert(parts, "turns " .. tostring(s.turns)) end
  if type(s.pending) == "table" and #s.pending > 0 then table.insert(parts, #s.pending .. " pending") end
  if type(s.retry) == "table" then
    local attempt = present(s.retry.attempt) and tostring(s.retry.attempt) or "?"
    local why = present(s.retry.message) and (": " .. tostring(s.retry.message)) or ""
    table.insert(parts, "retrying (" .. attempt .. ")" .. vim.split(why, "\n", { plain = true })[1])
  end
  if present(s.storageError) then
    table.insert(parts, "not saved: " .. vim.split(tostring(s.storageError), "\n", { plain = true })[1])
  end
  if present(s.error) then
    table.insert(parts, "error: " .. vim.split(tostring(s.error), "\n", { plain = true })[1])
  end
  if s.project then table.insert(parts, s.project.root) end
  return table.concat(parts, "  ·  ")
end

return M
