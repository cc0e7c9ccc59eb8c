//go:build !amd64 || purego

package sim

// haveMix4x8 says whether mix4 may use an assembly kernel (not on this
// platform: mix4's Go loop runs).
const haveMix4x8 = false

func mix4x8(out *int16, stride int, a, b *[4]*int16, slow *int32, dc *[32]int16, from, to int) {
	panic("sim: mix4x8 without assembly")
}

func mixRows8(out *int16, stride int, quads *kernelQuad, nq int, from int) {
	panic("sim: mixRows8 without assembly")
}
