// Character-level tokenizer with special tokens for turns and the end of a response; its JSON
// form is stored with every checkpoint so a model always decodes with the vocabulary it saw.

export const SPECIAL_TOKENS = ['<pad>', '<unk>', '<user>', '<assistant>', '<end>'] as const;
export const PAD = 0;
export const UNK = 1;
export const USER = 2;
export const ASSISTANT = 3;
export const END = 4;

export interface TokenizerJson {
  type: 'char';
  version: 1;
  /** Ordinary characters; token id = SPECIAL_TOKENS.length + index. */
  chars: string[];
}

export class Tokenizer {
  readonly chars: string[];
  private readonly index: Map<string, number>;

  constructor(chars: string[]) {
    this.chars = chars;
    this.index = new Map(chars.map((c, i) => [c, SPECIAL_TOKENS.length + i]));
  }

  /** Builds the vocabulary from the characters of a corpus (sorted, so it is reproducible). */
  static fromTexts(texts: Iterable<string>, maxChars = 256): Tokenizer {
    const counts = new Map<string, number>();
    for (const text of texts) for (const c of text) counts.set(c, (counts.get(c) ?? 0) + 1);
    // Keep the most frequent characters when the corpus has more than maxChars distinct ones.
    const kept = [...counts.entries()]
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
      .slice(0, maxChars)
      .map(([c]) => c)
      .sort();
    return new Tokenizer(kept);
  }

  static fromJson(json: TokenizerJson): Tokenizer {
    if (json.type !== 'char' || json.version !== 1)
      throw new Error(`unknown tokenizer ${JSON.stringify(json.type)}`);
    return new Tokenizer(json.chars);
  }

  toJson(): TokenizerJson {
    return { type: 'char', version: 1, chars: [...this.chars] };
  }

  get vocabSize(): number {
    return SPECIAL_TOKENS.length + this.chars.length;
  }

  encodeText(text: string): number[] {
    const ids: number[] = [];
    for (const c of text) ids.push(this.index.get(c) ?? UNK);
    return ids;
  }

  /** A prompt as the policy sees it: `<user> text <assistant>`; the response follows. */
  encodePrompt(prompt: string): number[] {
    return [USER, ...this.encodeText(prompt), ASSISTANT];
  }

  /** A response as trained on: its characters then `<end>`, which stops sampling. */
  encodeResponse(response: string): number[] {
    return [...this.encodeText(response), END];
  }

  /** Decodes ordinary characters up to the first `<end>`; other special tokens are dropped. */
  decode(ids: readonly number[]): string {
    let out = '';
    for (const id of ids) {
      if (id === END) break;
      if (id >= SPECIAL_TOKENS.length) out += this.chars[id - SPECIAL_TOKENS.length] ?? '';
    }
    return out;
  }
}
