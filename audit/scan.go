package audit

import "context"

// Scan reads every record of the log at s in order, after checking its checkpoint signature,
// and recomputes the tree as it goes: a record that was changed, dropped or inserted fails with
// an *EntryError before fn sees anything past it. Tools that replay or report on a log (policy
// dry-runs, records of processing) build on it.
func Scan(ctx context.Context, s Source, fn func(index uint64, r *Record) error) (*Checkpoint, error) {
	src, cp, err := s.open(ctx)
	if err != nil {
		return nil, err
	}
	if err := scan(ctx, src, cp, fn); err != nil {
		return nil, err
	}
	return cp, nil
}
