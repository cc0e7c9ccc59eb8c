#include "textflag.h"

// func rowInt16AVX2(in *int16, out *float32, z *float32, sec *sec32, nsec, n8, stride int, gain float32)
//
// Filters channels [0, n8) of one time step (n8 a multiple of 8), eight
// channels per instruction, every section fused so the sample stays in a
// register. Separate multiplies and adds in the order of the scalar
// reference loop (no FMA), so results are bit-identical to it:
//
//	v = float32(in[c]) * gain
//	for each section k: y = b0*v + z1;  z1 = (b1*v - a1*y) + z2;  z2 = b2*v - a2*y;  v = y
//	out[c] = v
//
// z is section 0's first delay of channel 0; section k's first delays
// start 2k·stride bytes after it, its second delays stride bytes after
// those. sec points at nsec ≥ 1 coefficient records {b0 b1 b2 a1 a2}.
TEXT ·rowInt16AVX2(SB), NOSPLIT, $0-60
	MOVQ         in+0(FP), SI
	MOVQ         out+8(FP), DI
	MOVQ         z+16(FP), DX
	MOVQ         sec+24(FP), R8
	MOVQ         nsec+32(FP), R9
	MOVQ         n8+40(FP), CX
	MOVQ         stride+48(FP), R10
	VBROADCASTSS gain+56(FP), Y15
	XORQ         AX, AX

	// Sixteen channels per iteration: two independent groups of eight
	// share each section's coefficients.
	MOVQ CX, BX
	ANDQ $~15, BX

pair:
	CMPQ      AX, BX
	JGE       channel
	VPMOVSXWD (SI)(AX*2), Y0
	VPMOVSXWD 16(SI)(AX*2), Y4
	VCVTDQ2PS Y0, Y0
	VCVTDQ2PS Y4, Y4
	VMULPS    Y15, Y0, Y0
	VMULPS    Y15, Y4, Y4
	LEAQ      (DX)(AX*4), R11
	MOVQ      R8, R12
	MOVQ      R9, R13

pairsection:
	VBROADCASTSS 0(R12), Y8            // b0
	VBROADCASTSS 4(R12), Y9            // b1
	VBROADCASTSS 8(R12), Y10           // b2
	VBROADCASTSS 12(R12), Y11          // a1
	VBROADCASTSS 16(R12), Y12          // a2
	VMULPS       Y0, Y8, Y1            // b0·v
	VMULPS       Y4, Y8, Y5
	VADDPS       (R11), Y1, Y1         // y = b0·v + z1
	VADDPS       32(R11), Y5, Y5
	VMULPS       Y0, Y9, Y2            // b1·v
	VMULPS       Y4, Y9, Y6
	VMULPS       Y1, Y11, Y3           // a1·y
	VMULPS       Y5, Y11, Y7
	VSUBPS       Y3, Y2, Y2            // b1·v - a1·y
	VSUBPS       Y7, Y6, Y6
	VADDPS       (R11)(R10*1), Y2, Y2  // + z2
	VADDPS       32(R11)(R10*1), Y6, Y6
	VMOVUPS      Y2, (R11)             // z1
	VMOVUPS      Y6, 32(R11)
	VMULPS       Y0, Y10, Y2           // b2·v
	VMULPS       Y4, Y10, Y6
	VMULPS       Y1, Y12, Y3           // a2·y
	VMULPS       Y5, Y12, Y7
	VSUBPS       Y3, Y2, Y2            // b2·v - a2·y
	VSUBPS       Y7, Y6, Y6
	VMOVUPS      Y2, (R11)(R10*1)      // z2
	VMOVUPS      Y6, 32(R11)(R10*1)
	VMOVAPS      Y1, Y0                // v = y
	VMOVAPS      Y5, Y4
	LEAQ         (R11)(R10*2), R11
	ADDQ         $20, R12
	DECQ         R13
	JNZ          pairsection

	VMOVUPS Y0, (DI)(AX*4)
	VMOVUPS Y4, 32(DI)(AX*4)
	ADDQ    $16, AX
	JMP     pair

channel:
	CMPQ      AX, CX
	JGE       done
	VPMOVSXWD (SI)(AX*2), Y0
	VCVTDQ2PS Y0, Y0
	VMULPS    Y15, Y0, Y0 // v = x·gain
	LEAQ      (DX)(AX*4), R11 // &z1 of section 0, channel AX
	MOVQ      R8, R12
	MOVQ      R9, R13

section:
	VBROADCASTSS 0(R12), Y1        // b0
	VMULPS       Y0, Y1, Y1        // b0·v
	VADDPS       (R11), Y1, Y1     // y = b0·v + z1
	VBROADCASTSS 4(R12), Y2        // b1
	VMULPS       Y0, Y2, Y2        // b1·v
	VBROADCASTSS 12(R12), Y3       // a1
	VMULPS       Y1, Y3, Y3        // a1·y
	VSUBPS       Y3, Y2, Y2        // b1·v - a1·y
	VADDPS       (R11)(R10*1), Y2, Y2 // + z2
	VMOVUPS      Y2, (R11)         // z1
	VBROADCASTSS 8(R12), Y2        // b2
	VMULPS       Y0, Y2, Y2        // b2·v
	VBROADCASTSS 16(R12), Y3       // a2
	VMULPS       Y1, Y3, Y3        // a2·y
	VSUBPS       Y3, Y2, Y2        // b2·v - a2·y
	VMOVUPS      Y2, (R11)(R10*1)  // z2
	VMOVAPS      Y1, Y0            // v = y
	LEAQ         (R11)(R10*2), R11
	ADDQ         $20, R12
	DECQ         R13
	JNZ          section

	VMOVUPS Y0, (DI)(AX*4)
	ADDQ    $8, AX
	JMP     channel

done:
	VZEROUPPER
	RET

// func belowMask64(row, lim *float32) uint64
//
// Bit i is set when row[i] < lim[i], for channels 0..63 (ordered compare:
// false for NaN, like Go's <).
TEXT ·belowMask64(SB), NOSPLIT, $0-24
	MOVQ      row+0(FP), SI
	MOVQ      lim+8(FP), DI
	VMOVUPS   0(SI), Y0
	VCMPPS    $1, 0(DI), Y0, Y0
	VMOVMSKPS Y0, AX
	VMOVUPS   32(SI), Y1
	VCMPPS    $1, 32(DI), Y1, Y1
	VMOVMSKPS Y1, BX
	SHLQ      $8, BX
	ORQ       BX, AX
	VMOVUPS   64(SI), Y2
	VCMPPS    $1, 64(DI), Y2, Y2
	VMOVMSKPS Y2, BX
	SHLQ      $16, BX
	ORQ       BX, AX
	VMOVUPS   96(SI), Y3
	VCMPPS    $1, 96(DI), Y3, Y3
	VMOVMSKPS Y3, BX
	SHLQ      $24, BX
	ORQ       BX, AX
	VMOVUPS   128(SI), Y0
	VCMPPS    $1, 128(DI), Y0, Y0
	VMOVMSKPS Y0, BX
	SHLQ      $32, BX
	ORQ       BX, AX
	VMOVUPS   160(SI), Y1
	VCMPPS    $1, 160(DI), Y1, Y1
	VMOVMSKPS Y1, BX
	SHLQ      $40, BX
	ORQ       BX, AX
	VMOVUPS   192(SI), Y2
	VCMPPS    $1, 192(DI), Y2, Y2
	VMOVMSKPS Y2, BX
	SHLQ      $48, BX
	ORQ       BX, AX
	VMOVUPS   224(SI), Y3
	VCMPPS    $1, 224(DI), Y3, Y3
	VMOVMSKPS Y3, BX
	SHLQ      $56, BX
	ORQ       BX, AX
	VZEROUPPER
	MOVQ      AX, ret+16(FP)
	RET

// func aboveMask64(row, lim *float32) uint64
//
// Bit i is set when row[i] > lim[i] (lim[i] < row[i]), channels 0..63.
TEXT ·aboveMask64(SB), NOSPLIT, $0-24
	MOVQ      row+0(FP), SI
	MOVQ      lim+8(FP), DI
	VMOVUPS   0(DI), Y0
	VCMPPS    $1, 0(SI), Y0, Y0
	VMOVMSKPS Y0, AX
	VMOVUPS   32(DI), Y1
	VCMPPS    $1, 32(SI), Y1, Y1
	VMOVMSKPS Y1, BX
	SHLQ      $8, BX
	ORQ       BX, AX
	VMOVUPS   64(DI), Y2
	VCMPPS    $1, 64(SI), Y2, Y2
	VMOVMSKPS Y2, BX
	SHLQ      $16, BX
	ORQ       BX, AX
	VMOVUPS   96(DI), Y3
	VCMPPS    $1, 96(SI), Y3, Y3
	VMOVMSKPS Y3, BX
	SHLQ      $24, BX
	ORQ       BX, AX
	VMOVUPS   128(DI), Y0
	VCMPPS    $1, 128(SI), Y0, Y0
	VMOVMSKPS Y0, BX
	SHLQ      $32, BX
	ORQ       BX, AX
	VMOVUPS   160(DI), Y1
	VCMPPS    $1, 160(SI), Y1, Y1
	VMOVMSKPS Y1, BX
	SHLQ      $40, BX
	ORQ       BX, AX
	VMOVUPS   192(DI), Y2
	VCMPPS    $1, 192(SI), Y2, Y2
	VMOVMSKPS Y2, BX
	SHLQ      $48, BX
	ORQ       BX, AX
	VMOVUPS   224(DI), Y3
	VCMPPS    $1, 224(SI), Y3, Y3
	VMOVMSKPS Y3, BX
	SHLQ      $56, BX
	ORQ       BX, AX
	VZEROUPPER
	MOVQ      AX, ret+16(FP)
	RET
