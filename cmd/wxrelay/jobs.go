package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-co-op/gocron/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxrelay/wxrelay/store"
)

// job is a named, periodic task. Names are stable: they are the keys of
// the jobs' locks in the database (store.JobLocker).
type job struct {
	name  string
	every time.Duration
	// exclusive jobs run on one replica at a time, and about once per
	// every among all replicas on the database: the replica that ran one
	// keeps its lock for every (store.JobLockerOptions.Hold), and another
	// takes over when it stops or dies. The other jobs run on each
	// replica, for what each replica must do itself.
	exclusive bool
	run       func(ctx context.Context) error
}

// scheduler runs the jobs and owns their locks.
type scheduler struct {
	gocron.Scheduler
	locker *store.JobLocker
}

// startJobs schedules jobs on gocron, with the exclusive ones locked in db.
// A run that is still going when its next one is due is not doubled
// (singleton mode). Errors are logged: the next run tries again.
//
// Each run's duration is observed in wxrelay_job_duration_seconds{job} on
// reg (nil: not measured): a health tick or a token scan that grows with
// the tenants shows there.
func startJobs(ctx context.Context, log *slog.Logger, db *store.DB, reg prometheus.Registerer, jobs ...job) (*scheduler, error) {
	took := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "wxrelay_job_duration_seconds",
		Help:    "How long each run of a scheduled job took, by job.",
		Buckets: []float64{.001, .01, .05, .1, .5, 1, 5, 15, 60, 300},
	}, []string{"job"})
	if reg != nil {
		if err := reg.Register(took); err != nil {
			return nil, err
		}
	}
	hold := map[string]time.Duration{}
	for _, j := range jobs {
		if j.exclusive {
			hold[j.name] = j.every
		}
	}
	locker := store.NewJobLocker(db, store.JobLockerOptions{Hold: hold, Logger: log})
	s, err := gocron.NewScheduler(gocron.WithStopTimeout(10*time.Second), gocron.WithDistributedLocker(locker))
	if err != nil {
		return nil, err
	}
	for _, j := range jobs {
		_, err := s.NewJob(
			gocron.DurationJob(j.every),
			gocron.NewTask(func() {
				start := time.Now()
				err := j.run(ctx)
				took.WithLabelValues(j.name).Observe(time.Since(start).Seconds())
				if err != nil && ctx.Err() == nil {
					log.Error("scheduled job failed", "job", j.name, "err", err)
				}
			}),
			gocron.WithName(j.name),
			gocron.WithSingletonMode(gocron.LimitModeReschedule),
			gocron.WithStartAt(gocron.WithStartImmediately()),
			gocron.WithDisabledDistributedJobLocker(!j.exclusive),
		)
		if err != nil {
			s.Shutdown()
			return nil, fmt.Errorf("schedule %s: %w", j.name, err)
		}
	}
	s.Start()
	return &scheduler{Scheduler: s, locker: locker}, nil
}

// stop waits for running jobs to end, then frees this replica's job locks
// so that another replica takes its jobs over at once.
func (s *scheduler) stop() error {
	err := s.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return errors.Join(err, s.locker.Release(ctx))
}
