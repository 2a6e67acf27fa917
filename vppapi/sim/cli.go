package sim

func (s *Sim) cli(cmd string) string { return "" }
