package sim

func (s *Sim) registerInterfaces(r *registry) {}
