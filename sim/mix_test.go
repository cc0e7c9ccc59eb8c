package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"testing"
)

// TestMix4KernelMatchesMix checks mix4 (and the assembly kernel behind it where
// there is one) against the scalar reference mix, channel by channel, for
// chunk lengths around the kernel's 8-sample steps, shared and separate
// slow signals, with and without saturation.
func TestMix4KernelMatchesMix(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 7, 8, 9, 15, 16, 17, 63, 270, 271} {
		for _, C := range []int{4, 12, 36} {
			for _, shared := range []bool{true, false} {
				for _, sat := range []bool{false, true} {
					// Without sat the caller guarantees the range: keep
					// |a|+|b|+|slow|+|dc| < 32768.
					lim := int32(8000)
					if sat {
						lim = 30000
					}
					rnd := func() int32 { return r.Int32N(2*lim+1) - lim }
					var in [4]mixInput
					slow := make([]int32, n)
					for i := range slow {
						slow[i] = rnd()
					}
					for k := range in {
						in[k].a, in[k].b = make([]int16, n), make([]int16, n)
						for i := range n {
							in[k].a[i], in[k].b[i] = int16(rnd()), int16(rnd())
						}
						in[k].slow = slow
						if !shared {
							in[k].slow = make([]int32, n)
							for i := range n {
								in[k].slow[i] = rnd()
							}
						}
						in[k].dc = rnd()
					}
					for c0 := 0; c0+4 <= C; c0 += 4 {
						out := make([]int16, n*C)
						for i := range out {
							out[i] = -1
						}
						mix4(out, C, c0, &in, sat)
						for k := range in {
							want := make([]int16, n)
							mix(want, in[k].a, in[k].b, in[k].slow, in[k].dc)
							for i := range n {
								if got := out[i*C+c0+k]; got != want[i] {
									t.Fatalf("n %d C %d c0 %d shared %v sat %v: channel %d sample %d = %d, want %d", n, C, c0, shared, sat, c0+k, i, got, want[i])
								}
							}
						}
						for i, v := range out {
							if c := i % C; (c < c0 || c >= c0+4) && v != -1 {
								t.Fatalf("n %d C %d c0 %d: wrote outside its channels at %d", n, C, c0, i)
							}
						}
					}
				}
			}
		}
	}
}

// TestGoldenBytes pins the generator's output for a fixed seed: the same
// Config must give the same bytes across versions and platforms, with or
// without the assembly kernels (go test -tags purego). The hash was made by
// the pure-Go mix (before mix_amd64.s existed); change it only with a
// deliberate change of the signal.
func TestGoldenBytes(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Channels: 64, Seed: 7, Duration: 30000, BlockSamples: 1000}, "e9711a10256ca3866557614b5f4ab6f3954d86e02670d8eaa1ca3a1723d382db"},
		{Config{Channels: 1024, Seed: 1, Duration: 6000}, "620a61df095148724365d8c0a2ee22701916a5efa22318cd08206002cfb0365c"},
		{Config{Channels: 30, Seed: 3, Duration: 6000, GroupChannels: 5, ArtifactUV: 20000, ArtifactRate: 50}, "692b72fdac6ecb4944e92d620d65426bcc084b3afe2a048c483288b36987ff27"},
	} {
		s, err := New(tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		data, _, _ := collect(t, s)
		h := sha256.Sum256(appendLE(nil, data))
		if got := hex.EncodeToString(h[:]); got != tc.want {
			t.Errorf("%d channels, seed %d: samples sha256 = %s, want %s", tc.cfg.Channels, tc.cfg.Seed, got, tc.want)
		}
	}
}

// TestMixBlocksMatchesMix checks the kernel path of work (mixBlocks over
// a chunk, with and without the padded tail) against the scalar mix.
func TestMixBlocksMatchesMix(t *testing.T) {
	if !haveMix4x8 {
		t.Skip("no assembly kernel on this platform")
	}
	r := rand.New(rand.NewPCG(3, 4))
	rnd := func() int32 { return r.Int32N(16001) - 8000 }
	for _, n := range []int{8, 13, 64, 270} {
		for _, padded := range []bool{false, true} {
			const C = 40 // quads at 0, 4, …, 36; the kernel takes some
			slow := make([]int32, n+mixPad)
			for i := range slow {
				slow[i] = rnd()
			}
			var quads []kernelQuad
			var ins [][4]mixInput
			for c0 := 4; c0 < C; c0 += 8 {
				var in [4]mixInput
				for k := range in {
					a, b := make([]int16, n+mixPad), make([]int16, n+mixPad)
					for i := range a {
						a[i], b[i] = int16(rnd()), int16(rnd())
					}
					in[k] = mixInput{a: a[:n], b: b[:n], slow: slow[:n], dc: rnd()}
				}
				quads = append(quads, newKernelQuad(c0, &in))
				ins = append(ins, in)
			}
			out := make([]int16, n*C)
			for i := range out {
				out[i] = 12345
			}
			var tail []int16
			if padded {
				tail = make([]int16, 8*C)
			}
			mixBlocks(out, C, n, quads, tail)
			for qi, q := range quads {
				for k := range 4 {
					want := make([]int16, n)
					in := ins[qi][k]
					mix(want, in.a, in.b, in.slow, in.dc)
					for i := range n {
						if got := out[i*C+q.c0+k]; got != want[i] {
							t.Fatalf("n %d padded %v: channel %d sample %d = %d, want %d", n, padded, q.c0+k, i, got, want[i])
						}
					}
				}
			}
			for i, v := range out {
				if (i%C)%8 < 4 && v != 12345 {
					t.Fatalf("n %d padded %v: wrote channel %d, not the kernel's", n, padded, i%C)
				}
			}
		}
	}
}
