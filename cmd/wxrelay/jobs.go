package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-co-op/gocron/v2"
)

// job is a named, periodic task. Names are stable: with several replicas
// they will also be the keys of the distributed lock.
type job struct {
	name  string
	every time.Duration
	run   func(ctx context.Context) error
}

// startJobs schedules jobs on gocron. A run that is still going when its
// next one is due is not doubled (singleton mode). Errors are logged: the
// next run tries again.
func startJobs(ctx context.Context, log *slog.Logger, jobs ...job) (gocron.Scheduler, error) {
	s, err := gocron.NewScheduler(gocron.WithStopTimeout(10 * time.Second))
	if err != nil {
		return nil, err
	}
	for _, j := range jobs {
		_, err := s.NewJob(
			gocron.DurationJob(j.every),
			gocron.NewTask(func() {
				if err := j.run(ctx); err != nil && ctx.Err() == nil {
					log.Error("scheduled job failed", "job", j.name, "err", err)
				}
			}),
			gocron.WithName(j.name),
			gocron.WithSingletonMode(gocron.LimitModeReschedule),
			gocron.WithStartAt(gocron.WithStartImmediately()),
		)
		if err != nil {
			s.Shutdown()
			return nil, fmt.Errorf("schedule %s: %w", j.name, err)
		}
	}
	s.Start()
	return s, nil
}
