package posix

// BreakJournal makes every later journal write fail, as a dead disk would.
func BreakJournal(l *Log) { l.j.f.Close() }
