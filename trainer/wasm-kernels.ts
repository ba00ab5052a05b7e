// Kernels of TensorFlow.js's wasm backend (tfjs 4.22) that the trainer replaces or adds, installed
// once per thread by initBackend():
// - LoomBatchMatMul: a batch of matrix products (attention's Q·Kᵀ and P·V) as one XNNPACK product
//   per matrix; wasm runs any product with a batch through a scalar triple loop, 6-7× slower.
// - Identity and Cast to the same dtype share the input's data, reference-counted, as tfjs's cpu
//   backend does: tfjs clones every tensor a gradient keeps, and wasm's clone copied the data.
// - BatchMatMul keeps XNNPACK's cache of packed right-hand operands sound: wasm caches it per data
//   id, not per shape, so one buffer used as [K, N] and later, reshaped, as [K', N'] would be
//   multiplied with the first shape's packing.
import * as tf from '@tensorflow/tfjs';

export const BATCH_MATMUL = 'LoomBatchMatMul';

/** The parts of tfjs-backend-wasm's BackendWasm used here. */
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
  incRef(dataId: tf.DataId): void;
}

function isWasmBackend(be: unknown): be is WasmBackend {
  const b = be as Partial<WasmBackend>;
  return (
    typeof b.wasm?._BatchMatMul === 'function' &&
    typeof b.wasm._malloc === 'function' &&
    typeof b.wasm.tfjs?.registerTensor === 'function' &&
    typeof b.wasm.tfjs.disposeData === 'function' &&
    typeof b.dataIdMap?.get === 'function' &&
    typeof b.dataIdNextNumber === 'number' &&
    typeof b.makeOutput === 'function' &&
    typeof b.incRef === 'function'
  );
}

/** Installs the kernels on the wasm backend (the active one); a no-op when its internals differ. */
export function installWasmKernels(): void {
  if (!isWasmBackend(tf.backend())) return;
  replace(tf.Identity, (original) => shareData(original));
  replace(tf.Cast, (original) => shareData(original));
  replace(tf.BatchMatMul, (original) => soundMatMul(original));
  if (!tf.getKernel(BATCH_MATMUL, 'wasm'))
    tf.registerKernel({ kernelName: BATCH_MATMUL, backendName: 'wasm', kernelFunc: batchMatMul });
}

type Replaced = tf.KernelConfig & { loom?: true };

function replace(name: string, make: (original: tf.KernelConfig) => tf.KernelFunc): void {
  const original = tf.getKernel(name, 'wasm') as Replaced | undefined;
  if (!original || original.loom) return;
  tf.unregisterKernel(name, 'wasm');
  tf.registerKernel({ ...original, kernelFunc: make(original), loom: true } as Replaced);
}

function shareData(original: tf.KernelConfig): tf.KernelFunc {
  return (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    const dtype = (args.attrs?.dtype as tf.DataType | undefined) ?? x.dtype;
    if (dtype !== x.dtype || dtype === 'string') return original.kernelFunc(args);
    (args.backend as WasmBackend).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype };
  };
}

function soundMatMul(original: tf.KernelConfig): tf.KernelFunc {
  // The [K, N] each buffer was first packed as; weak, so entries go with their data.
  const packedAs = new WeakMap<tf.DataId, string>();
  return (args) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = args.attrs as { transposeA: boolean; transposeB: boolean };
    const batch = (t: tf.TensorInfo): number => t.shape.slice(0, -2).reduce((x, y) => x * y, 1);
    // Only untransposed products without a batch reach XNNPACK and its cache.
    if (transposeA || transposeB || batch(a) !== 1 || batch(b) !== 1 || a.dtype !== 'float32')
      return original.kernelFunc(args);
    const shape = b.shape.slice(-2).join('x');
    const first = packedAs.get(b.dataId);
    if (first === undefined) packedAs.set(b.dataId, shape);
    if (first === undefined || first === shape) return original.kernelFunc(args);
    const [M, K] = a.shape.slice(-2) as [number, number];
    const N = b.shape[b.shape.length - 1] ?? 0;
    const be = args.backend as WasmBackend;
    const lead = (a.shape.length >= b.shape.length ? a.shape : b.shape).slice(0, -2); // all 1s
    const out = be.makeOutput([...lead, M, N], 'float32');
    multiplyViews(be, a, b, out, 1, M, K, N);
    return out;
  };
}

function batchMatMul(args: { inputs: tf.NamedTensorInfoMap; backend: unknown }): tf.TensorInfo {
  const be = args.backend as WasmBackend;
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const [M, K] = a.shape.slice(-2) as [number, number];
  const P = b.shape[b.shape.length - 1] ?? 0;
  const lead = a.shape.slice(0, -2);
  const out = be.makeOutput([...lead, M, P], 'float32');
  multiplyViews(
    be,
    a,
    b,
    out,
    lead.reduce((x, y) => x * y, 1),
    M,
    K,
    P,
  );
  return out;
}

/** Two [1, rows, cols] shapes (int32) on each wasm heap, allocated once. */
const shapeBuffers = new WeakMap<object, number>();

/**
 * out[i] = a[i]·b[i] for the n matrices a [n, M, K], b [n, K, P], out [n, M, P]: each matrix is
 * registered under a fresh tensor id as a view into its tensor's memory (no copy), multiplied on
 * the 2-D XNNPACK path, and its views dropped again, which also drops XNNPACK's cached packing.
 */
function multiplyViews(
  be: WasmBackend,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  out: tf.TensorInfo,
  n: number,
  M: number,
  K: number,
  P: number,
): void {
  const aMem = be.dataIdMap.get(a.dataId);
  const bMem = be.dataIdMap.get(b.dataId);
  const outMem = be.dataIdMap.get(out.dataId);
  if (!aMem || !bMem || !outMem) throw new Error('matrix product: tensor not on the wasm heap');
  const { wasm } = be;
  let shapes = shapeBuffers.get(wasm);
  if (shapes === undefined) {
    shapes = wasm._malloc(24);
    shapeBuffers.set(wasm, shapes);
  }
  new Int32Array(wasm.HEAPU8.buffer, shapes, 6).set([1, M, K, 1, K, P]);
  for (let i = 0; i < n; i++) {
    const ids = [be.dataIdNextNumber++, be.dataIdNextNumber++, be.dataIdNextNumber++] as const;
    wasm.tfjs.registerTensor(ids[0], M * K, aMem.memoryOffset + 4 * i * M * K);
    wasm.tfjs.registerTensor(ids[1], K * P, bMem.memoryOffset + 4 * i * K * P);
    wasm.tfjs.registerTensor(ids[2], M * P, outMem.memoryOffset + 4 * i * M * P);
    wasm._BatchMatMul(ids[0], shapes, 3, ids[1], shapes + 12, 3, 0, 0, ids[2]);
    for (const id of ids) wasm.tfjs.disposeData(id);
  }
}
