package sim

func (s *Sim) registerIP(r *registry) {}
