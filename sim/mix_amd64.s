//go:build !purego

#include "go_asm.h"
#include "textflag.h"

// func mix4x8(out *int16, stride int, a, b *[4]*int16, slow *int32, dc *[32]int16, from, to int)
//
// SSE2 (baseline amd64). For each group of 8 samples: the four channels'
// a+b+slow+dc in 16-bit lanes (wrapping: the caller guarantees no
// saturation, so the low 16 bits are the exact result), then a 4×8
// transpose so that each sample's four channels leave as one 64-bit store.
TEXT ·mix4x8(SB), NOSPLIT, $0-64
	MOVQ out+0(FP), DI
	MOVQ stride+8(FP), DX
	MOVQ a+16(FP), AX
	MOVQ 0(AX), R8
	MOVQ 8(AX), R9
	MOVQ 16(AX), R10
	MOVQ 24(AX), R11
	MOVQ b+24(FP), AX
	MOVQ 0(AX), R12
	MOVQ 8(AX), R13
	MOVQ 16(AX), R14
	MOVQ 24(AX), CX
	MOVQ dc+40(FP), AX
	MOVOU 0(AX), X8
	MOVOU 16(AX), X9
	MOVOU 32(AX), X10
	MOVOU 48(AX), X11
	MOVQ slow+32(FP), AX
	MOVQ from+48(FP), SI
	CMPQ SI, to+56(FP)
	JGE  done

loop:
	// Channel k's samples i..i+7 in Xk: a + b.
	MOVOU (R8)(SI*1), X0
	MOVOU (R12)(SI*1), X4
	PADDW X4, X0
	MOVOU (R9)(SI*1), X1
	MOVOU (R13)(SI*1), X5
	PADDW X5, X1
	MOVOU (R10)(SI*1), X2
	MOVOU (R14)(SI*1), X4
	PADDW X4, X2
	MOVOU (R11)(SI*1), X3
	MOVOU (CX)(SI*1), X5
	PADDW X5, X3

	// The group's slow signal: eight int32 truncated to their low 16 bits
	// (sign-extended first so that the saturating pack is exact).
	MOVOU (AX)(SI*2), X6
	MOVOU 16(AX)(SI*2), X7
	PSLLL $16, X6
	PSRAL $16, X6
	PSLLL $16, X7
	PSRAL $16, X7
	PACKSSLW X7, X6
	PADDW X6, X0
	PADDW X6, X1
	PADDW X6, X2
	PADDW X6, X3
	PADDW X8, X0
	PADDW X9, X1
	PADDW X10, X2
	PADDW X11, X3

	// Transpose: T0 = c0c1 of samples 0-3, X0 = c0c1 of 4-7, T2, X2 the same
	// for c2c3; then U = four channels of two samples each.
	MOVO X0, X4
	PUNPCKLWL X1, X4
	PUNPCKHWL X1, X0
	MOVO X2, X5
	PUNPCKLWL X3, X5
	PUNPCKHWL X3, X2
	MOVO X4, X6
	PUNPCKLLQ X5, X6 // samples 0, 1
	PUNPCKHLQ X5, X4 // samples 2, 3
	MOVO X0, X7
	PUNPCKLLQ X2, X7 // samples 4, 5
	PUNPCKHLQ X2, X0 // samples 6, 7

	MOVQ   X6, (DI)
	MOVHPS X6, (DI)(DX*1)
	LEAQ   (DI)(DX*2), BX
	MOVQ   X4, (BX)
	MOVHPS X4, (BX)(DX*1)
	LEAQ   (BX)(DX*2), BX
	MOVQ   X7, (BX)
	MOVHPS X7, (BX)(DX*1)
	LEAQ   (BX)(DX*2), BX
	MOVQ   X0, (BX)
	MOVHPS X0, (BX)(DX*1)
	LEAQ   (BX)(DX*2), DI

	ADDQ $16, SI
	CMPQ SI, to+56(FP)
	JLT  loop

done:
	RET

// func mixRows8(out *int16, stride int, quads *kernelQuad, nq int, from int)
//
// Samples from/2 … from/2+7 of nq kernelQuads in order, out pointing at
// sample from/2's row: mix4x8 with the loops swapped, so that the eight
// rows fill in order across the quads.
TEXT ·mixRows8(SB), NOSPLIT, $8-40
	MOVQ stride+8(FP), DX
	MOVQ quads+16(FP), AX
	MOVQ nq+24(FP), CX
	IMULQ $kernelQuad__size, CX
	ADDQ AX, CX
	MOVQ CX, end-8(SP)
	MOVQ from+32(FP), SI
	CMPQ AX, CX
	JGE  rdone

rloop:
	MOVQ (kernelQuad_a+0)(AX), R8
	MOVQ (kernelQuad_a+8)(AX), R9
	MOVQ (kernelQuad_a+16)(AX), R10
	MOVQ (kernelQuad_a+24)(AX), R11
	MOVQ (kernelQuad_b+0)(AX), R12
	MOVQ (kernelQuad_b+8)(AX), R13
	MOVQ (kernelQuad_b+16)(AX), R14
	MOVQ (kernelQuad_b+24)(AX), CX
	MOVQ kernelQuad_slow(AX), BX

	MOVOU (R8)(SI*1), X0
	MOVOU (R12)(SI*1), X4
	PADDW X4, X0
	MOVOU (R9)(SI*1), X1
	MOVOU (R13)(SI*1), X5
	PADDW X5, X1
	MOVOU (R10)(SI*1), X2
	MOVOU (R14)(SI*1), X4
	PADDW X4, X2
	MOVOU (R11)(SI*1), X3
	MOVOU (CX)(SI*1), X5
	PADDW X5, X3

	MOVOU (BX)(SI*2), X6
	MOVOU 16(BX)(SI*2), X7
	PSLLL $16, X6
	PSRAL $16, X6
	PSLLL $16, X7
	PSRAL $16, X7
	PACKSSLW X7, X6
	PADDW X6, X0
	PADDW X6, X1
	PADDW X6, X2
	PADDW X6, X3
	MOVOU (kernelQuad_dc+0)(AX), X8
	MOVOU (kernelQuad_dc+16)(AX), X9
	MOVOU (kernelQuad_dc+32)(AX), X10
	MOVOU (kernelQuad_dc+48)(AX), X11
	PADDW X8, X0
	PADDW X9, X1
	PADDW X10, X2
	PADDW X11, X3

	MOVO X0, X4
	PUNPCKLWL X1, X4
	PUNPCKHWL X1, X0
	MOVO X2, X5
	PUNPCKLWL X3, X5
	PUNPCKHWL X3, X2
	MOVO X4, X6
	PUNPCKLLQ X5, X6
	PUNPCKHLQ X5, X4
	MOVO X0, X7
	PUNPCKLLQ X2, X7
	PUNPCKHLQ X2, X0

	MOVQ kernelQuad_c0(AX), BX
	MOVQ out+0(FP), DI
	LEAQ (DI)(BX*2), DI
	MOVQ   X6, (DI)
	MOVHPS X6, (DI)(DX*1)
	LEAQ   (DI)(DX*2), BX
	MOVQ   X4, (BX)
	MOVHPS X4, (BX)(DX*1)
	LEAQ   (BX)(DX*2), BX
	MOVQ   X7, (BX)
	MOVHPS X7, (BX)(DX*1)
	LEAQ   (BX)(DX*2), BX
	MOVQ   X0, (BX)
	MOVHPS X0, (BX)(DX*1)

	ADDQ $kernelQuad__size, AX
	CMPQ AX, end-8(SP)
	JLT  rloop

rdone:
	RET
