package sim

// state is everything the simulated VPP keeps. Handlers reach it with Sim.mu held.
type state struct {
}

func newState() *state { return &state{} }

func (st *state) addStartupInterface(spec InterfaceSpec) error { return nil }
