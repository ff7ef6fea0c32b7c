--- What a session changed, and its own work tree: the diff buffer (filetype `diff`),
--- merge (staged, with a `gitcommit` buffer that commits on :write) and discard.
local config = require("codex_sessions.config")
local rpc = require("codex_sessions.rpc")
local state = require("codex_sessions.state")
local util = require("codex_sessions.util")

local M = {}

local H = {
  diffs = {}, -- buf -> { id, workdir, files = { row -> path } }
}

local function actions()
  return require("codex_sessions.actions")
end

local function label(s)
  return string.format("%s/%s", s.project and s.project.name or "?", s.name or "?")
end

local function valid(buf)
  return buf and vim.api.nvim_buf_is_valid(buf)
end

--- Where the session's Codex works: its own work tree when it has one, else the project.
local function workdir(s)
  local tree = type(s.worktree) == "table" and s.worktree or nil
  if tree and type(tree.path) == "string" and vim.fn.isdirectory(tree.path) == 1 then
    return tree.path
  end
  return s.project.root
end

-- ---------------------------------------------------------------------------------------
-- The diff buffer

--- The lines of the diff buffer for `s` and the `codex/session/diff` answer; and which
--- summary row names which file.
local function diff_lines(s, result)
  local tree = type(s.worktree) == "table" and s.worktree or nil
  local dir = workdir(s)
  local lines, files = {}, {}
  if tree then
    table.insert(lines, string.format("Changes of %s in its work tree %s (branch %s, from %s)%s", label(s),
      vim.fn.fnamemodify(dir, ":~"), tostring(tree.branch), tostring(tree.base or ""):sub(1, 12),
      tree.merged == true and ", merged" or ""))
  else
    table.insert(lines, string.format("Changes of %s in %s, against HEAD", label(s), vim.fn.fnamemodify(dir, ":~")))
  end
  local listed = type(result.files) == "table" and result.files or {}
  if #listed == 0 then
    table.insert(lines, "No changes.")
  end
  for _, f in ipairs(listed) do
    table.insert(lines, string.format("  %-9s %s  +%s -%s", tostring(f.status or ""), f.path, tostring(f.added or 0),
      tostring(f.removed or 0)))
    if f.status ~= "deleted" then
      files[#lines] = f.path
    end
  end
  for _, o in ipairs(type(result.overlaps) == "table" and result.overlaps or {}) do
    local others = {}
    for _, id in ipairs(o.sessions or {}) do
      if id ~= s.id then
        local other = state.get(id)
        table.insert(others, other and label(other) or id)
      end
    end
    table.insert(lines, string.format("  ! %s was changed by %s too", o.path, table.concat(others, ", ")))
  end
  table.insert(lines, "")
  local diff = tostring(result.diff or ""):gsub("\n$", "")
  if diff ~= "" then
    vim.list_extend(lines, vim.split(diff, "\n", { plain = true }))
  end
  return lines, files
end

--- The file and line the cursor's diff line stands for: a file of the summary, or a
--- line of a hunk (its line in the new file; a removed line: where it was).
local function target_at_cursor(buf)
  local d = H.diffs[buf]
  local row = vim.api.nvim_win_get_cursor(0)[1]
  if d.files[row] then
    return d.files[row], nil
  end
  local lines = vim.api.nvim_buf_get_lines(buf, 0, row, false)
  local function file_of(line)
    if line:match("^%+%+%+ ") then
      return line:match("^%+%+%+ b/(.+)$") or false -- false: /dev/null, deleted
    end
    return line:match("^diff %-%-git a/.- b/(.+)$")
  end
  local at_line, new_lines = nil, 0
  for i = row, 1, -1 do
    local line = lines[i]
    local file = file_of(line)
    if file ~= nil then
      if file == false then
        return nil, "this file was deleted"
      end
      return file, at_line
    end
    local start = line:match("^@@ %-%d+,?%d* %+(%d+),?%d* @@")
    if start then
      at_line = at_line or math.max(tonumber(start) + new_lines, 1)
    elseif i < row and not at_line and (line:match("^[ +]") or line == "") then
      new_lines = new_lines + 1 -- a line of the new file above the cursor, in this hunk
    end
  end
  return nil, "no file here: move to a file's name or a line of its diff"
end

--- Open the file the cursor's line names, in the session's own work tree when it has one.
function M.open_at_cursor(buf)
  buf = (buf == nil or buf == 0) and vim.api.nvim_get_current_buf() or buf
  local d = H.diffs[buf]
  if not d then
    return
  end
  local path, line = target_at_cursor(buf)
  if not path then
    util.notify("codex-sessions: " .. tostring(line), vim.log.levels.ERROR)
    return
  end
  local file = d.workdir .. "/" .. path
  if not vim.uv.fs_stat(file) then
    util.notify("codex-sessions: " .. file .. " does not exist (any more)", vim.log.levels.ERROR)
    return
  end
  vim.cmd.edit(vim.fn.fnameescape(file))
  if line then
    pcall(vim.api.nvim_win_set_cursor, 0, { math.min(line, vim.api.nvim_buf_line_count(0)), 0 })
  end
end

local function map_diff_keys(buf)
  local k = config.options.keys.diff
  local function map(lhs, fn, desc)
    util.map(buf, "n", lhs, fn, desc)
  end
  local function ref()
    return { id = H.diffs[buf].id }
  end
  map(k.open, function() M.open_at_cursor(buf) end, "open the file (at the line) in the session's work tree")
  map(k.goto_file, function() M.open_at_cursor(buf) end, "open the file (at the line) in the session's work tree")
  map(k.merge, function() M.merge(ref()) end, "merge the session's work tree (staged)")
  map(k.discard, function() M.discard(ref(), state.get(H.diffs[buf].id)) end, "discard the session's work tree")
  map(k.refresh, function() M.diff(ref()) end, "ask for the diff again")
  map(k.close, function() util.leave(buf) end, "close the diff")
  map(k.help, function() util.show_keys("diff", k) end, "show keys")
end

local function diff_buffer(s)
  local name = "codex-diff://" .. label(s)
  for b, d in pairs(H.diffs) do
    if valid(b) and d.id == s.id then
      pcall(vim.api.nvim_buf_set_name, b, name)
      return b
    end
  end
  local buf = vim.api.nvim_create_buf(false, true)
  vim.bo[buf].buftype = "nofile"
  vim.bo[buf].bufhidden = "hide"
  vim.bo[buf].swapfile = false
  pcall(vim.api.nvim_buf_set_name, buf, name)
  H.diffs[buf] = { id = s.id, files = {}, workdir = s.project.root }
  vim.b[buf].codex_sessions_view = true
  vim.b[buf].codex_sessions_id = s.id
  vim.bo[buf].filetype = "diff"
  map_diff_keys(buf)
  vim.api.nvim_create_autocmd("BufWipeout", { buffer = buf, callback = function() H.diffs[buf] = nil end })
  return buf
end

--- Show what the session changed (`codex/session/diff`) in its diff buffer, in the
--- session window: a work tree's changes against the commit it started from, a shared
--- session's files against HEAD.
function M.diff(ref)
  rpc.request("codex/session/diff", actions().ref(ref), function(err, result)
    if err then
      rpc.notify_error(err)
      return
    end
    -- the session itself, for its work tree and name: from the cache, else asked for
    local function show(s)
      local buf = diff_buffer(s)
      local lines, files = diff_lines(s, result)
      vim.bo[buf].modifiable = true
      vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
      vim.bo[buf].modifiable = false
      vim.bo[buf].modified = false
      H.diffs[buf].files, H.diffs[buf].workdir = files, workdir(s)
      local win = util.show_session(buf)
      pcall(vim.api.nvim_win_set_cursor, win, { 1, 0 })
    end
    local r = actions().ref(ref)
    local cached = actions().cached(r)
    if cached then
      show(cached)
    else
      rpc.request("codex/session/get", r, function(e, got)
        if e then
          rpc.notify_error(e)
        else
          state.update(got.session)
          show(got.session)
        end
      end)
    end
  end)
end

-- ---------------------------------------------------------------------------------------
-- Merge and its commit buffer

--- Commit what is staged in `root` with the text of `buf` (comments stripped), without
--- waiting: on success the buffer goes, on failure it stays with git's words.
local function commit(buf, root)
  local text = table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), "\n") .. "\n"
  local ok, err = pcall(vim.system, { "git", "commit", "-q", "--cleanup=strip", "-F", "-" },
    { cwd = root, stdin = text, text = true }, vim.schedule_wrap(function(done)
      if done.code == 0 then
        local first = vim.split(vim.trim(text:gsub("\n#[^\n]*", "")), "\n", { plain = true })[1] or ""
        util.notify(util.one_line(string.format("codex-sessions: committed in %s: %s",
          vim.fn.fnamemodify(root, ":~"), first)), vim.log.levels.INFO)
        if valid(buf) then
          vim.bo[buf].modified = false
          util.leave(buf)
          pcall(vim.api.nvim_buf_delete, buf, { force = true })
        end
      else
        util.notify(util.one_line("codex-sessions: git commit failed in " .. root .. ": "
          .. vim.trim((done.stderr or "") .. " " .. (done.stdout or ""))), vim.log.levels.ERROR)
      end
    end))
  if not ok then
    util.notify("codex-sessions: cannot run git: " .. tostring(err), vim.log.levels.ERROR)
  end
end

--- A `gitcommit` buffer holding `message` for what the merge of `s` staged: :write
--- commits (git commit, in the background), closing it without writing leaves the
--- changes staged.
local function commit_buffer(s, result)
  local root = s.project.root
  local name = "codex-commit://" .. label(s)
  local old = vim.fn.bufnr(name)
  if old > 0 then
    pcall(vim.api.nvim_buf_delete, old, { force = true })
  end
  local buf = vim.api.nvim_create_buf(false, false)
  vim.bo[buf].buftype = "acwrite"
  vim.bo[buf].bufhidden = "wipe"
  vim.bo[buf].swapfile = false
  pcall(vim.api.nvim_buf_set_name, buf, name)
  local lines = vim.split(tostring(result.message or ""):gsub("\n+$", ""), "\n", { plain = true })
  vim.list_extend(lines, {
    "",
    string.format("# %s merged into %s (%s): staged, not committed.", label(s), root, result.strategy or "squash"),
    "# :w commits what is staged (git commit); :q leaves it staged for you to commit.",
    "# Lines starting with '#' are left out. Staged:",
  })
  for _, f in ipairs(result.files or {}) do
    table.insert(lines, "#\t" .. f)
  end
  vim.api.nvim_buf_set_lines(buf, 0, -1, false, lines)
  vim.bo[buf].modified = false
  vim.b[buf].codex_sessions_view = true
  vim.b[buf].codex_sessions_id = s.id
  vim.b[buf].codex_sessions_commit = { id = s.id, root = root, files = result.files }
  vim.bo[buf].filetype = "gitcommit"
  vim.api.nvim_create_autocmd("BufWriteCmd", {
    buffer = buf,
    callback = function()
      commit(buf, root)
    end,
  })
  local win = util.show_session(buf)
  pcall(vim.api.nvim_win_set_cursor, win, { 1, 0 })
  return buf
end

--- Merge a work-tree session's changes into the project's work tree: staged, not
--- committed (`strategy` "squash", the default, or "commit"); the suggested message
--- opens in a commit buffer. A refused merge names the files.
function M.merge(ref, strategy)
  local params = vim.tbl_extend("force", actions().ref(ref), { strategy = strategy or "squash" })
  rpc.request("codex/session/merge", params, function(err, result)
    if err then
      local files = type(err.data) == "table" and type(err.data.files) == "table" and err.data.files or {}
      local message = rpc.error_message(err)
      local missing = vim.tbl_filter(function(f) return not message:find(f, 1, true) end, files)
      if #missing > 0 then
        message = message .. " (" .. table.concat(missing, ", ") .. ")"
      end
      util.notify(util.one_line("codex-sessions: merge refused: " .. message), vim.log.levels.ERROR)
      return
    end
    local s = result.session
    state.update(s)
    local files = result.files or {}
    if #files == 0 then
      util.notify("codex-sessions: " .. label(s) .. " changed nothing: nothing to merge", vim.log.levels.INFO)
      return
    end
    result.strategy = params.strategy
    commit_buffer(s, result)
    util.notify(util.one_line(string.format(
      "codex-sessions: merged %s, staged: %s (:w commits, :q leaves them staged)", label(s),
      table.concat(files, ", "))), vim.log.levels.INFO)
  end)
end

--- Remove a session's own work tree and its branch, once the user said yes (the session
--- stops; its record and transcript stay).
function M.discard(ref, session)
  local function go(s)
    local tree = type(s.worktree) == "table" and s.worktree or nil
    if not tree then
      util.notify("codex-sessions: " .. label(s) .. " has no work tree of its own to discard", vim.log.levels.ERROR)
      return
    end
    local question = string.format("Discard the work tree %s and the branch %s of %s%s?",
      vim.fn.fnamemodify(tostring(tree.path), ":~"), tostring(tree.branch), label(s),
      tree.merged == true and "" or ", and its changes that are not merged")
    if not util.confirm(question) then
      return
    end
    rpc.request("codex/session/discard", { id = s.id }, function(err, result)
      if err then
        rpc.notify_error(err)
        return
      end
      state.update(result.session)
      util.notify(string.format("codex-sessions: discarded the work tree and the branch %s of %s",
        tostring(tree.branch), label(s)), vim.log.levels.INFO)
    end)
  end
  if session then
    go(session)
    return
  end
  rpc.request("codex/session/get", actions().ref(ref), function(err, result)
    if err then
      rpc.notify_error(err)
      return
    end
    state.update(result.session)
    go(result.session)
  end)
end

return M
