package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// lifecycle stops serve's parts in one stated order, on every way out of
// serve: a signal, a server that fails, or a part that fails to start
// after others did. Parts register how they stop as they start, each in a
// stage; stop runs the stages in order, and within a stage undoes the
// parts in the reverse of their start.
//
// Left to the order of defers, the order was implicit, and exits other
// than a signal skipped the draining: a failing server returned with
// /wxapi handlers still running into a closed call log, and a failing job
// scheduler left the dispatcher running over a closing database.
type lifecycle struct {
	log    *slog.Logger
	grace  time.Duration
	stages [stageCount][]stopStep
	once   sync.Once
}

// The stages, in the order they stop.
type stage int

const (
	// stopServing: the listeners stop taking requests and those in flight
	// finish, within the grace period; past it they are cut.
	stopServing stage = iota
	// stopWorking: background work (deliveries in flight, jobs, the
	// tenant watch) ends; nothing new reaches the writers.
	stopWorking
	// stopWriting: the writers flush what they hold (pushes, call
	// records), then what they wrote to closes: the senders, the
	// database.
	stopWriting
	stageCount
)

var stageNames = [stageCount]string{"serving", "working", "writing"}

type stopStep struct {
	name string
	stop func(ctx context.Context) error
}

func newLifecycle(log *slog.Logger, grace time.Duration) *lifecycle {
	return &lifecycle{log: log, grace: grace}
}

// onStop registers how a part that has just started stops.
func (l *lifecycle) onStop(s stage, name string, stop func(ctx context.Context) error) {
	l.stages[s] = append(l.stages[s], stopStep{name, stop})
}

// closer adapts a Close method to onStop.
func closer(close func() error) func(context.Context) error {
	return func(context.Context) error { return close() }
}

// server registers an HTTP server, drained within the grace period and
// closed past it.
func (l *lifecycle) server(name string, s *http.Server) {
	l.onStop(stopServing, name, func(ctx context.Context) error {
		if err := s.Shutdown(ctx); err != nil {
			s.Close()
			return err
		}
		return nil
	})
}

// listener registers a listener not yet served, closed with the servers
// (closing it again after its server has is harmless).
func (l *lifecycle) listener(name string, ln net.Listener) {
	l.onStop(stopServing, name, func(context.Context) error {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			return err
		}
		return nil
	})
}

// stop stops every registered part, stage by stage, and logs what failed
// to stop cleanly. The grace period runs from the start of stopServing.
// Only the first call does anything.
func (l *lifecycle) stop() { l.once.Do(l.stopAll) }

func (l *lifecycle) stopAll() {
	ctx, cancel := context.WithTimeout(context.Background(), l.grace)
	defer cancel()
	for s := range stageCount {
		steps := l.stages[s]
		for i := len(steps) - 1; i >= 0; i-- {
			if err := steps[i].stop(ctx); err != nil {
				l.log.Warn("stopping "+steps[i].name, "stage", stageNames[s], "err", err)
			}
		}
	}
}
