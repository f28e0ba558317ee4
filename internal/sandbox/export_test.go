package sandbox

// HasSpare reports whether a spare is set up (tests only).
func (s *Sandbox) HasSpare() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spare != nil
}

// SparesUsed counts the steps that started in a spare (tests only).
func (s *Sandbox) SparesUsed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sparesUsed
}

// SpareWaiting reports whether a spare's launcher waits for its step
// (tests only).
func (s *Sandbox) SpareWaiting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spare != nil && s.spare.waiting()
}

// SparePid is the spare's bwrap, or 0 (tests only).
func (s *Sandbox) SparePid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.spare == nil {
		return 0
	}
	return s.spare.proc.Pid
}
