// Matrix products and transposes that stay on the fast paths of the wasm backend.
//
// Measured on wasm (tfjs 4.22): a 2-D product [1, M, K]·[1, K, P] runs in XNNPACK, but any product
// with a batch (Q·Kᵀ and P·V of attention) or a transpose flag runs a scalar triple loop, 6-7×
// slower; and a plain 2-D transpose of a tall matrix writes with a large power-of-two stride, up to
// 10× slower than transposing it in blocks. bmm() runs a batch as one XNNPACK product per matrix,
// working in place on the batch's memory; swapLast() transposes big matrices in blocks.
import * as tf from '@tensorflow/tfjs';

/**
 * Matrix product whose gradient never asks the wasm kernel to transpose an operand: wasm's
 * BatchMatMul with transposeA/transposeB runs 5-10× slower than on a transposed copy, and
 * tf.matMul's own gradient uses exactly those flags (dW = xᵀ·dy).
 */
// @ts-expect-error tfjs types customGrad's function as variadic Tensor[], not (a, b, save).
const mmOp = tf.customGrad((a: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
  save([a, b]);
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sa, sb] = saved as [tf.Tensor, tf.Tensor];
      return [tf.matMul(dy, swapLast(sb)), tf.matMul(swapLast(sa), dy)];
    },
  };
});

export function mm<T extends tf.Tensor>(a: T, b: tf.Tensor): T {
  return mmOp(a, b) as T;
}

/** Swaps the last two axes (a matrix transpose, batched). */
export function swapLast(x: tf.Tensor): tf.Tensor {
  const n = x.rank;
  if (n === 2) return transpose2d(x as tf.Tensor2D);
  const perm = x.shape.map((_, i) => i);
  [perm[n - 2], perm[n - 1]] = [n - 1, n - 2];
  return tf.transpose(x, perm);
}

const BLOCK = 16;

/**
 * xᵀ for x [R, C]. Big ones go in two cheap steps: [R/16, 16, C] → [R/16, C, 16] (small transposes
 * whose writes stay close together), then the 16-wide strips move whole to their place.
 */
function transpose2d(x: tf.Tensor2D): tf.Tensor2D {
  const [R, C] = x.shape;
  if (R % BLOCK !== 0 || R <= BLOCK || R * C < 16384) return tf.transpose(x);
  return tf.tidy(() =>
    tf.transpose(tf.transpose(tf.reshape(x, [R / BLOCK, BLOCK, C]), [0, 2, 1]), [1, 0, 2]).reshape([C, R]),
  );
}

/**
 * a·b for a [..., M, K] and b [..., K, P] with the same leading axes (e.g. attention's
 * [B, H, T, hd]). On wasm, when each matrix product is big enough to repay a call into XNNPACK,
 * it runs as one such call per matrix; otherwise (and on other backends) as mm().
 */
export function bmm<T extends tf.Tensor>(a: T, b: tf.Tensor): T {
  const [M, K] = a.shape.slice(-2) as [number, number];
  const P = b.shape[b.rank - 1] ?? 0;
  const sameBatch =
    a.rank >= 3 && a.rank === b.rank && a.shape.slice(0, -2).every((d, i) => d === b.shape[i]);
  if (sameBatch && M * K * P >= MIN_MACS && wasmBackend() !== undefined)
    return tf.engine().runKernel(KERNEL, { a, b }, {}) as T;
  return mm(a, b);
}

/**
 * Multiply-adds per matrix from which one XNNPACK call per matrix beats the scalar batched loop
 * (a call costs a few microseconds; decoding one token, M = 1, stays on the loop).
 */
const MIN_MACS = 8192;

const KERNEL = 'LoomBatchMatMul';

/** The parts of tfjs-backend-wasm's BackendWasm this file uses (tfjs 4.x). */
interface WasmBackend {
  wasm: {
    _malloc(bytes: number): number;
    _BatchMatMul(
      aId: number,
      aShape: number,
      aRank: number,
      bId: number,
      bShape: number,
      bRank: number,
      transposeA: number,
      transposeB: number,
      outId: number,
    ): void;
    HEAPU8: Uint8Array;
    tfjs: {
      registerTensor(id: number, size: number, offset: number): void;
      disposeData(id: number): void;
    };
  };
  dataIdMap: { get(dataId: tf.DataId): { id: number; memoryOffset: number } | undefined };
  dataIdNextNumber: number;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
}

/** The active backend when it is wasm with the internals bmm's kernel relies on. */
function wasmBackend(): WasmBackend | undefined {
  if (tf.getBackend() !== 'wasm') return undefined;
  const be = tf.backend() as unknown as Partial<WasmBackend>;
  const ok =
    typeof be.wasm?._BatchMatMul === 'function' &&
    typeof be.wasm._malloc === 'function' &&
    typeof be.wasm.tfjs?.registerTensor === 'function' &&
    typeof be.wasm.tfjs.disposeData === 'function' &&
    typeof be.dataIdMap?.get === 'function' &&
    typeof be.dataIdNextNumber === 'number' &&
    typeof be.makeOutput === 'function';
  return ok ? (be as WasmBackend) : undefined;
}

/** Two [1, rows, cols] shapes (int32) on the wasm heap, allocated once per backend. */
const shapeBuffers = new WeakMap<object, number>();

function batchMatMulKernel({
  inputs,
  backend,
}: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
}): tf.TensorInfo {
  const be = backend as WasmBackend;
  const { a, b } = inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const [M, K] = a.shape.slice(-2) as [number, number];
  const P = b.shape[b.shape.length - 1] ?? 0;
  const lead = a.shape.slice(0, -2);
  const N = lead.reduce((x, y) => x * y, 1);
  const out = be.makeOutput([...lead, M, P], 'float32');
  const aMem = be.dataIdMap.get(a.dataId);
  const bMem = be.dataIdMap.get(b.dataId);
  const outMem = be.dataIdMap.get(out.dataId);
  if (!aMem || !bMem || !outMem) throw new Error('bmm: tensor not on the wasm heap');
  const { wasm } = be;
  let shapes = shapeBuffers.get(be.wasm);
  if (shapes === undefined) {
    shapes = wasm._malloc(24);
    shapeBuffers.set(be.wasm, shapes);
  }
  new Int32Array(wasm.HEAPU8.buffer, shapes, 6).set([1, M, K, 1, K, P]);
  // Each matrix of the batch is registered under a fresh id as a view into its tensor's memory,
  // multiplied (the 2-D XNNPACK path), and the views are dropped again (not freed: no copy made).
  for (let i = 0; i < N; i++) {
    const ids = [be.dataIdNextNumber++, be.dataIdNextNumber++, be.dataIdNextNumber++] as const;
    wasm.tfjs.registerTensor(ids[0], M * K, aMem.memoryOffset + 4 * i * M * K);
    wasm.tfjs.registerTensor(ids[1], K * P, bMem.memoryOffset + 4 * i * K * P);
    wasm.tfjs.registerTensor(ids[2], M * P, outMem.memoryOffset + 4 * i * M * P);
    wasm._BatchMatMul(ids[0], shapes, 3, ids[1], shapes + 12, 3, 0, 0, ids[2]);
    for (const id of ids) wasm.tfjs.disposeData(id);
  }
  return out;
}

if (!tf.getKernel(KERNEL, 'wasm')) {
  tf.registerKernel({
    kernelName: KERNEL,
    backendName: 'wasm',
    kernelFunc: batchMatMulKernel as tf.KernelFunc,
  });
  tf.registerGradient({
    kernelName: KERNEL,
    inputsToSave: ['a', 'b'],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const [a, b] = saved as [tf.Tensor, tf.Tensor];
      const d = dy as tf.Tensor;
      return { a: () => bmm(d, swapLast(b)), b: () => bmm(swapLast(a), d) };
    },
  });
}
