-- A live system dashboard in hybrid mode: the UI state and its behaviour live here in Lua; the
-- backend (examples/dashboard_backend/main.rs) writes the live numbers into it through client
-- variables and watches `paused` to stop sampling.
Dashboard = session:prototype("Dashboard", {
  processes = 0, load = "", cpu = 0, memory = 0, samples = 0, paused = false,
})

function Dashboard:toggle()
  self.paused = not self.paused
end

function Dashboard:status()
  if self.paused then return "paused" end
  return "live"
end

session:createAppVariable(Dashboard:new({}))
