/**
 * Minimal ONNX protobuf surgery for batched verification: expose, as extra graph outputs, the key/value tensors
 * of the NEW positions only (the second input of the Concat that builds each `present.*`). A batched pass then
 * fetches B·n·kv_dim values per layer instead of the whole B·(past + n)·kv_dim present cache, which onnxruntime-node
 * copies into fresh JS memory on every run (measured: that copy, not the compute, made padded batches slower).
 */
import { ModelError, ModelErrorCode } from './errors.js';

interface Field {
  no: number;
  wire: number;
  /** Byte range of the whole field (tag included). */
  start: number;
  end: number;
  /** Payload range for length-delimited fields. */
  body: [number, number];
}

function varint(b: Uint8Array, pos: number): [number, number] {
  let v = 0;
  let mul = 1;
  for (;;) {
    if (pos >= b.length) throw new Error('truncated varint');
    const x = b[pos++];
    v += (x & 0x7f) * mul;
    if (x < 0x80) return [v, pos];
    mul *= 128;
  }
}

function fields(b: Uint8Array, from: number, to: number): Field[] {
  const out: Field[] = [];
  let p = from;
  while (p < to) {
    const start = p;
    const [tag, q] = varint(b, p);
    p = q;
    const no = Math.floor(tag / 8);
    const wire = tag & 7;
    let body: [number, number] = [p, p];
    if (wire === 0) p = varint(b, p)[1];
    else if (wire === 1) p += 8;
    else if (wire === 5) p += 4;
    else if (wire === 2) {
      const [len, r] = varint(b, p);
      body = [r, r + len];
      p = r + len;
    } else throw new Error(`unsupported wire type ${wire}`);
    out.push({ no, wire, start, end: p, body });
  }
  if (p !== to) throw new Error('field overruns its message');
  return out;
}

const text = (b: Uint8Array, f: Field) => new TextDecoder().decode(b.subarray(f.body[0], f.body[1]));

function encVarint(v: number): number[] {
  const out: number[] = [];
  while (v >= 0x80) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

function lenField(no: number, payload: Uint8Array): Uint8Array {
  const head = [...encVarint(no * 8 + 2), ...encVarint(payload.length)];
  const out = new Uint8Array(head.length + payload.length);
  out.set(head, 0);
  out.set(payload, head.length);
  return out;
}

/** Where a layer's new key or value positions can be fetched. */
export interface NewKvOutput {
  name: string;
  /** The tensor is float32 and the cache float16 (the graph casts after the Concat): convert when storing. */
  castToHalf: boolean;
}

/**
 * For each present output name, the tensor holding only the new positions: input 1 of the two-input Concat that
 * produces it, directly (GPT-2 exports) or through one Cast (fp16-cache exports: Cast(Concat(Cast(past), new))).
 */
export function newKvTensors(model: Uint8Array, presents: readonly string[], file: string): NewKvOutput[] {
  try {
    const graph = fields(model, 0, model.length).find((f) => f.no === 7 && f.wire === 2);
    if (!graph) throw new Error('no graph');
    const producers = new Map<string, { op: string; inputs: string[] }>();
    for (const f of fields(model, graph.body[0], graph.body[1])) {
      if (f.no !== 1 || f.wire !== 2) continue;
      const inputs: string[] = [];
      const outputs: string[] = [];
      let op = '';
      for (const g of fields(model, f.body[0], f.body[1])) {
        if (g.no === 1) inputs.push(text(model, g));
        else if (g.no === 2) outputs.push(text(model, g));
        else if (g.no === 4) op = text(model, g);
      }
      for (const o of outputs) producers.set(o, { op, inputs });
    }
    return presents.map((name) => {
      let p = producers.get(name);
      const castToHalf = p?.op === 'Cast';
      if (p && castToHalf) p = producers.get(p.inputs[0]);
      if (!p || p.op !== 'Concat' || p.inputs.length !== 2) {
        throw new Error(`${name} is not produced by a two-input Concat (${p ? p.op : 'no producer'})`);
      }
      return { name: p.inputs[1], castToHalf };
    });
  } catch (e) {
    throw new ModelError(
      ModelErrorCode.BadLayout,
      `${file}: cannot batch this graph: ${e instanceof Error ? e.message : String(e)}`,
      { cause: e },
    );
  }
}

/** The model bytes with `names` added as graph outputs (types are inferred by ONNX Runtime). */
export function withExtraOutputs(model: Uint8Array, names: readonly string[]): Uint8Array {
  const top = fields(model, 0, model.length);
  const graph = top.find((f) => f.no === 7 && f.wire === 2)!;
  const extra = names.map((n) => lenField(12, lenField(1, new TextEncoder().encode(n))));
  const body = new Uint8Array(graph.body[1] - graph.body[0] + extra.reduce((s, x) => s + x.length, 0));
  body.set(model.subarray(graph.body[0], graph.body[1]), 0);
  let o = graph.body[1] - graph.body[0];
  for (const x of extra) {
    body.set(x, o);
    o += x.length;
  }
  const g = lenField(7, body);
  const out = new Uint8Array(model.length - (graph.end - graph.start) + g.length);
  out.set(model.subarray(0, graph.start), 0);
  out.set(g, graph.start);
  out.set(model.subarray(graph.end), graph.start + g.length);
  return out;
}
