"""LLVM intrinsics the fused engine calls: vector width, bit casts, prefetches, arrays on the
stack and the CPU's floating-point mode. No equation here; none of them changes a value beyond
what its docstring says (prefer_wide_vectors and prefetch_to_l2 are hints, changing none).
"""

from __future__ import annotations

import platform
from typing import Any

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from numbamlp.kernels._jit import helper


@intrinsic
def prefer_wide_vectors(typingctx: Any) -> Any:
    """Mark the function this is called in with LLVM's ``"prefer-vector-width"="512"``.

    The loops of that function (and of the helpers LLVM inlines into it) may then use 512-bit
    vectors: more multiply-adds per cycle than 256-bit ones on CPUs with two 512-bit FMA units
    (docs/performance.md, "Figures moved out of the code"), when their rows start on cache
    lines (``memory.aligned_zeros``). A hint, changing no result beyond what ``reassoc``
    already allows; on CPUs without AVX-512 it has no effect.
    """

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        # A string attribute: llvmlite's AttributeSet.add accepts only LLVM's keyword
        # attributes, but writes whatever the set holds into the IR as it is.
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()

    return types.none(), codegen


@intrinsic
def float32_from_bits(typingctx, bits):
    """The float32 whose IEEE-754 bits are the int32 ``bits`` (LLVM ``bitcast``; with an
    exponent field e and zero mantissa: 2^{e−127})."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@intrinsic
def prefetch_to_l2(typingctx, array, i, j):
    """Prefetch the cache line holding array[i, j] of a C-contiguous 2-d array into L2
    (``llvm.prefetch``, read, locality 2: x86 ``prefetcht1``). A hint only: it changes no value
    and never faults."""

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        row_stride = builder.extract_value(ary.strides, 0)
        item = context.get_constant(types.intp, signature.args[0].dtype.bitwidth // 8)
        byte = builder.add(builder.mul(args[1], row_stride), builder.mul(args[2], item))
        address = builder.gep(builder.bitcast(ary.data, ir.IntType(8).as_pointer()), [byte])
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [address.type, i32, i32, i32])
        prefetch = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(prefetch, [address, i32(0), i32(2), i32(1)])
        return context.get_dummy_value()

    return types.none(array, types.intp, types.intp), codegen


# ---------------------------------------------------------------------------------------------
# Subnormal numbers. While g_r = 0 (an input pixel absent from the minibatch, a saturated unit),
# Adam's m_r ← β₁m_r + (1−β₁)g_r decays geometrically, down through the subnormal range below
# 1.2e-38 (float32); each operation that makes or reads a subnormal number costs the CPU a
# microcode assist, many times the cost of an ordinary operation. At batch 32, enough of m turns
# subnormal within an epoch to slow the epochs markedly (docs/performance.md, "Figures moved out
# of the code"). With ``flush`` the regions set the x86 MXCSR bits FTZ and DAZ (flush to zero,
# denormals are zero: subnormal results and inputs count as 0, as TensorFlow does by default)
# for their own work and restore the thread's mode afterwards. θ cannot feel the difference:
# Adam moves θ_r by at most γ_p · |m_r| / ε ≈ 1e-33 for such an m_r.

FLUSH_TO_ZERO = 0x8040  # MXCSR bit 15 (FTZ) and bit 6 (DAZ)
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


@helper
def enter_flush_mode(flush):
    """With ``flush``, subnormal numbers count as zero on this thread from now on; returns the
    thread's previous mode, for ``leave_flush_mode``. (On CPUs other than x86: nothing.)"""
    saved = read_fp_mode()
    if flush and _X86:
        write_fp_mode(saved | FLUSH_TO_ZERO)
    return saved


@helper
def leave_flush_mode(saved):
    """Restore the thread's mode (other code runs on Numba's threads too)."""
    if _X86:
        write_fp_mode(saved)


@intrinsic
def read_fp_mode(typingctx):
    """The calling thread's MXCSR register, the x86 floating-point control word (LLVM's
    ``llvm.x86.sse.stmxcsr``, which Numba does not expose); 0 on other CPUs."""

    def codegen(context, builder, signature, args):
        if not _X86:
            return ir.Constant(ir.IntType(64), 0)
        slot = cgutils.alloca_once(builder, ir.IntType(32))
        fnty = ir.FunctionType(ir.VoidType(), [slot.type])
        stmxcsr = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.stmxcsr")
        builder.call(stmxcsr, [slot])
        return builder.zext(builder.load(slot), ir.IntType(64))

    return types.int64(), codegen


@intrinsic
def write_fp_mode(typingctx, mode):
    """Set the calling thread's MXCSR register (``llvm.x86.sse.ldmxcsr``); nothing elsewhere."""

    def codegen(context, builder, signature, args):
        if _X86:
            slot = cgutils.alloca_once(builder, ir.IntType(32))
            builder.store(builder.trunc(args[0], ir.IntType(32)), slot)
            fnty = ir.FunctionType(ir.VoidType(), [slot.type])
            ldmxcsr = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.ldmxcsr")
            builder.call(ldmxcsr, [slot])
        return context.get_dummy_value()

    return types.none(types.int64), codegen


@intrinsic
def stack_array(typingctx, rows, cols, like):
    """A rows × cols C-ordered array with the dtype of ``like`` (an array, or a NumPy scalar
    type) on the calling function's stack (LLVM ``alloca``), its entries undefined until
    written. rows and cols must be constants. No allocation on the heap, so none in the training
    loop; and where every index into the array is a constant once LLVM has unrolled the loops
    over it, LLVM keeps the whole array in vector registers, not in memory: the register tile of
    a GEMM micro-kernel (``tiles.weight_gradient_strip``), written as an ordinary array."""
    if not (isinstance(rows, types.IntegerLiteral) and isinstance(cols, types.IntegerLiteral)):
        return None
    dtype = like.dtype if isinstance(like, types.Array) else getattr(like, "instance_type", None)
    if not isinstance(dtype, types.Number):
        return None
    n_rows, n_cols = rows.literal_value, cols.literal_value
    array_type = types.Array(dtype, 2, "C")

    def codegen(context, builder, signature, args):
        from numba.np.arrayobj import make_array, populate_array

        element = context.get_data_type(dtype)
        itemsize = context.get_abi_sizeof(element)
        with builder.goto_entry_block():
            slot = builder.alloca(ir.ArrayType(element, n_rows * n_cols))
            slot.align = 64
        intp = context.get_value_type(types.intp)
        array = make_array(array_type)(context, builder)
        populate_array(
            array,
            data=builder.bitcast(slot, element.as_pointer()),
            shape=[ir.Constant(intp, n_rows), ir.Constant(intp, n_cols)],
            strides=[ir.Constant(intp, n_cols * itemsize), ir.Constant(intp, itemsize)],
            itemsize=ir.Constant(intp, itemsize),
            meminfo=None,
        )
        return array._getvalue()

    return array_type(rows, cols, like), codegen
