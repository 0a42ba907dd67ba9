// Package load drives WeChat push traffic at a push URL, for the relay's
// ingress benchmark ("wxsim load").
//
// A [Generator] builds distinct safe-mode JSON text pushes, each with its
// own MsgId, exactly as WeChat sends them. [Prepare] encrypts a [Pool] of
// them before the clock starts, so the generator's own crypto does not
// limit the rate it measures. [Run] sends them:
//
//   - closed loop (Options.Rate 0): Concurrency workers each send a push,
//     wait for the answer and send the next; latency runs from send to
//     answer.
//   - open loop (Options.Rate > 0): pushes are scheduled at fixed intervals
//     whatever the answers do, and latency runs from each push's scheduled
//     time, so a slow server's queueing shows in the latency instead of
//     quietly lowering the rate (coordinated omission). Concurrency caps the
//     pushes in flight.
//
// [Compare] alternates rounds between a relay and a [BareServer], a plain
// net/http handler that reads the body and answers "success", and reports
// both rates, their ratio and both latency distributions:
//
//	bare, _ := load.StartBare()
//	defer bare.Close()
//	gen, _ := load.NewGenerator(load.Tenant{Token: ..., AppID: ..., EncodingAESKey: ..., ToUserName: ..., FromUserName: ...})
//	pool, _ := load.Prepare(ctx, gen, 100_000)
//	cmp, _ := load.Compare(ctx, load.Target{URL: relayURL, Source: pool}, load.Target{URL: bare.URL, Source: pool.Repeat()}, opts, 5)
package load
