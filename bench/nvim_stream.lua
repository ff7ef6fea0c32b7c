-- Benchmark: the Neovim front-end (lua/codex_sessions) taking streamed agent text.
-- Run by bench/editors.py as `nvim --headless --clean -l bench/nvim_stream.lua`.
-- Starts a session through the plugin's public entry, require("codex_sessions").start,
-- with a prompt that streams BENCH_BYTES of agent text, and samples the session
-- buffer's size with Neovim's own CPU time and the wall clock until it has grown by
-- BENCH_BYTES or BENCH_LIMIT seconds pass. Samples go to BENCH_OUT, "GROWTH CPU WALL".
local env = vim.env
local bytes = tonumber(env.BENCH_BYTES)
local limit = tonumber(env.BENCH_LIMIT)
vim.opt.runtimepath:prepend(env.BENCH_ROOT)
vim.o.swapfile = false
vim.notify = function() end
vim.cmd("runtime plugin/codex_sessions.lua")
local cs = require("codex_sessions")
cs.setup({ cmd = vim.split(env.BENCH_SIDECAR, " ", { trimempty = true }), open = "current" })
vim.fn.chdir(env.BENCH_PROJECT)

local function cpu()
  local r = vim.uv.getrusage()
  return r.utime.sec + r.utime.usec / 1e6 + r.stime.sec + r.stime.usec / 1e6
end
local function now()
  return vim.uv.hrtime() / 1e9
end
local function size(buf)
  return vim.api.nvim_buf_get_offset(buf, vim.api.nvim_buf_line_count(buf))
end

local started = now()
local sid
cs.start("bench", env.BENCH_DIRECTIVE .. ": " .. bytes, env.BENCH_PROJECT, function(result)
  sid = result.session.id
end)
vim.wait(60000, function() return sid ~= nil end, 10)
local buffer = require("codex_sessions.buffer")
local buf
vim.wait(10000, function() buf = buffer.buf_of(sid); return buf ~= nil end, 10)
local base = size(buf)
local samples = { { 0, cpu(), now() } }
local last = -1
while now() - started < limit do
  vim.wait(20, function() return false end, 5)
  local grown = size(buf) - base
  if grown ~= last then
    last = grown
    table.insert(samples, { grown, cpu(), now() })
  end
  if grown >= bytes then
    break
  end
end
local f = assert(io.open(env.BENCH_OUT, "w"))
for _, s in ipairs(samples) do
  f:write(string.format("%d %.6f %.6f\n", s[1], s[2], s[3]))
end
f:close()
pcall(cs.stop)
vim.wait(2000, function() return false end, 50)
vim.cmd("qall!")
