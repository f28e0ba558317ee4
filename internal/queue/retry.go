package queue

import (
	"context"
	"fmt"
)

// Retry gives up this delivery because the system failed (the clone failed,
// the forge was down): the job goes back in the queue as a new entry, counted
// as a delivery, or becomes a dead letter with reason when it has had
// MaxDeliveries. It reports whether the entry was dead-lettered.
func (q *Queue) Retry(ctx context.Context, d *Delivery, reason string) (dead bool, err error) {
	if d.Deliveries >= q.opts.MaxDeliveries {
		reason = fmt.Sprintf("%s (delivered %d times, limit %d)", reason, d.Deliveries, q.opts.MaxDeliveries)
		return true, q.deadLetter(ctx, d, reason)
	}
	_, err = q.requeue(ctx, d, d.Deliveries)
	return false, err
}
