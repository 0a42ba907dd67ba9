package console

import (
	"fmt"
	"strings"
	"time"

	"github.com/wxrelay/wxrelay/relay"
)

// chartSpan is how far back a tenant's chart goes.
const chartSpan = 24 * time.Hour

// Chart geometry, in SVG user units: one unit per minute across, and the
// busiest minute's height up.
const (
	chartMinutes = int(chartSpan / time.Minute)
	chartHeight  = 120
)

// chart is a tenant's delivery attempts per minute over the last day, as
// the paths of an SVG drawn by the server: one vertical stroke per minute
// with attempts, delivered from the baseline and failed stacked on top.
// Only minutes with attempts cost bytes, so a quiet tenant's chart is a
// few hundred bytes and the busiest one's some 30 KiB, with no script.
type chart struct {
	Width, Height     int
	Delivered, Failed string // path data
	Max               int    // attempts in the busiest minute
	TotalDelivered    int
	TotalFailed       int
	Ticks             []chartTick
	From, To          time.Time
}

type chartTick struct {
	X     int
	Label string
}

func newChart(counts []relay.MinuteCount, now time.Time) chart {
	to := now.UTC().Truncate(time.Minute).Add(time.Minute)
	from := to.Add(-chartSpan)
	c := chart{Width: chartMinutes, Height: chartHeight, From: from, To: to}
	column := func(m relay.MinuteCount) (int, bool) {
		x := int(m.Minute.Sub(from) / time.Minute)
		return x, !m.Minute.Before(from) && x < chartMinutes
	}
	for _, m := range counts {
		if _, in := column(m); in {
			c.Max = max(c.Max, m.Delivered+m.Failed)
			c.TotalDelivered += m.Delivered
			c.TotalFailed += m.Failed
		}
	}
	var d, f strings.Builder
	for _, m := range counts {
		x, in := column(m)
		if !in {
			continue
		}
		hd := scale(m.Delivered, c.Max)
		hf := scale(m.Failed, c.Max)
		// Half a unit in, so that the stroke (one unit wide) covers its
		// minute exactly.
		if hd > 0 {
			fmt.Fprintf(&d, "M%d.5 %dv-%d", x, chartHeight, hd)
		}
		if hf > 0 {
			fmt.Fprintf(&f, "M%d.5 %dv-%d", x, chartHeight-hd, hf)
		}
	}
	c.Delivered, c.Failed = d.String(), f.String()
	// A tick every 6 hours, on the hour.
	for t := from.Truncate(6 * time.Hour).Add(6 * time.Hour); t.Before(to); t = t.Add(6 * time.Hour) {
		c.Ticks = append(c.Ticks, chartTick{X: int(t.Sub(from) / time.Minute), Label: t.Format("15:04")})
	}
	return c
}

// scale is n's height in a chart whose tallest minute has top; at least 1
// for any attempt, so that a lone failure among thousands still shows.
func scale(n, top int) int {
	if n == 0 || top == 0 {
		return 0
	}
	return max(1, n*chartHeight/top)
}
