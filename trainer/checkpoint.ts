// Serializes a model (weights, optimizer state, config, tokenizer, step) to one Buffer without
// tfjs-node, and stores/loads such Buffers as rows of the ModelArtifact table.
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import type { PrismaClient } from '../core/db/client.js';

/** Layout: "LOOM" · uint32 LE header length · UTF-8 JSON header · float32 LE tensor bytes. */
export const CHECKPOINT_FORMAT = 'loom-tfjs-1';
const MAGIC = 'LOOM';

export type ArtifactKind = 'policy' | 'reward-model' | 'text-reward-model';

export interface CheckpointHeader {
  format: typeof CHECKPOINT_FORMAT;
  kind: ArtifactKind;
  /** Model and training configuration, enough to rebuild the model. */
  config: Record<string, unknown>;
  tokenizer: Record<string, unknown>;
  step: number;
  /** Anything else worth keeping (best validation loss, metrics, optimizer step). */
  meta: Record<string, unknown>;
  tensors: { name: string; shape: number[]; offset: number }[];
}

/** A float32 array with a shape, for models kept outside TensorFlow (the text reward model). */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

export interface Checkpoint {
  header: CheckpointHeader;
  /** Named float32 tensors: model weights and optimizer slots (prefixed by their owner). */
  tensors: Map<string, tf.Tensor>;
}

export function encodeCheckpoint(
  fields: Omit<CheckpointHeader, 'format' | 'tensors'>,
  tensors: Map<string, tf.Tensor | HostTensor>,
): Buffer {
  const specs: CheckpointHeader['tensors'] = [];
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [name, t] of tensors) {
    const data = t instanceof tf.Tensor ? (t.dataSync() as Float32Array) : t.data;
    if (!(data instanceof Float32Array)) throw new Error(`tensor ${name} is not float32`);
    specs.push({ name, shape: t.shape, offset });
    const bytes = Buffer.alloc(data.length * 4);
    for (let i = 0; i < data.length; i++) bytes.writeFloatLE(data[i] ?? 0, i * 4);
    chunks.push(bytes);
    offset += bytes.length;
  }
  const header: CheckpointHeader = { format: CHECKPOINT_FORMAT, ...fields, tensors: specs };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.write(MAGIC, 0, 'ascii');
  prefix.writeUInt32LE(json.length, 4);
  return Buffer.concat([prefix, json, ...chunks]);
}

/** Reads only the header (cheap: the tensors stay bytes). */
export function readCheckpointHeader(buf: Buffer): CheckpointHeader {
  if (buf.length < 8 || buf.toString('ascii', 0, 4) !== MAGIC) throw new Error('not a Loom checkpoint');
  const length = buf.readUInt32LE(4);
  const header = JSON.parse(buf.toString('utf8', 8, 8 + length)) as CheckpointHeader;
  if (header.format !== CHECKPOINT_FORMAT) throw new Error(`unsupported checkpoint format ${header.format}`);
  return header;
}

export function decodeCheckpoint(buf: Buffer): Checkpoint {
  const header = readCheckpointHeader(buf);
  const base = 8 + buf.readUInt32LE(4);
  const tensors = new Map<string, tf.Tensor>();
  for (const spec of header.tensors) {
    const size = spec.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(size);
    for (let i = 0; i < size; i++) data[i] = buf.readFloatLE(base + spec.offset + i * 4);
    tensors.set(spec.name, tf.tensor(data, spec.shape));
  }
  return { header, tensors };
}

export function sha256(buf: Buffer): string {
  return createHash('sha256').update(buf).digest('hex');
}

/** Writes a checkpoint as a ModelArtifact row; returns its id. */
export async function saveArtifact(
  prisma: PrismaClient,
  buf: Buffer,
  options: { projectId?: string | null } = {},
): Promise<string> {
  const header = readCheckpointHeader(buf);
  const row = await prisma.modelArtifact.create({
    data: {
      projectId: options.projectId ?? null,
      // The table distinguishes policies from reward models; the text RM is a reward model.
      kind: header.kind === 'policy' ? 'policy' : 'reward-model',
      format: header.format,
      config: { ...header.config, artifactKind: header.kind } as object,
      tokenizer: header.tokenizer as object,
      step: header.step,
      byteSize: buf.length,
      sha256: sha256(buf),
      data: new Uint8Array(buf),
    },
    select: { id: true },
  });
  return row.id;
}

/** Reads a ModelArtifact row back and checks its hash. */
export async function loadArtifact(prisma: PrismaClient, id: string): Promise<Buffer> {
  const row = await prisma.modelArtifact.findUnique({ where: { id }, select: { data: true, sha256: true } });
  if (!row) throw new Error(`model artifact ${id} not found`);
  const buf = Buffer.from(row.data);
  if (sha256(buf) !== row.sha256) throw new Error(`model artifact ${id} is corrupt (sha256 mismatch)`);
  return buf;
}
