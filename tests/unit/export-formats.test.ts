// The data shapes of exports and imports without a database: TRL's extract_prompt rule (with its
// Python quirks), HH transcripts, margins, CSV quoting, safe file names, and that a missing id can
// never widen an export's query.
import { describe, expect, it } from 'vitest';
import {
  csvField,
  csvLine,
  extractPromptTrl,
  hhText,
  marginOf,
  messagesOfTranscript,
  pairRow,
  splitHhPair,
  strengthOf,
} from '../../core/services/export-formats.js';
import { pairOfHhRow, pairOfTrlRow, parsePreferenceFile } from '../../core/services/preference-imports.js';
import { safeFileName, selectionSql, type Selection } from '../../core/services/exports.js';

describe("TRL's implicit prompt", () => {
  it('splits at the first difference and gives the space before it to the completions', () => {
    // The example in TRL's documentation of maybe_extract_prompt.
    expect(extractPromptTrl('The sky is blue.', 'The sky is green.')).toEqual({
      prompt: 'The sky is',
      chosen: ' blue.',
      rejected: ' green.',
    });
    expect(extractPromptTrl('ab', 'ac')).toEqual({ prompt: 'a', chosen: 'b', rejected: 'c' });
  });

  it('keeps Python’s quirks: a prefix pair stops on the last index; index -1 reads the last item', () => {
    // No difference within the shorter: Python's loop variable ends at len - 1, without `break`.
    expect(extractPromptTrl('abc', 'abcd')).toEqual({ prompt: 'ab', chosen: 'c', rejected: 'cd' });
    // A difference at 0 with a trailing space: chosen[-1] == " " so idx becomes -1.
    expect(extractPromptTrl('x y ', 'z')).toEqual({ prompt: 'x y', chosen: ' ', rejected: 'z' });
    expect(() => extractPromptTrl('', 'a')).toThrow();
  });

  it('compares whole messages for conversational rows', () => {
    const user = { role: 'user', content: 'Hi' };
    const split = extractPromptTrl(
      [user, { role: 'assistant', content: 'Hello' }],
      [user, { role: 'assistant', content: 'Go away' }],
    );
    expect(split.prompt).toEqual([user]);
    expect(split.chosen).toEqual([{ role: 'assistant', content: 'Hello' }]);
  });
});

describe('HH-RLHF transcripts', () => {
  const messages = [
    { role: 'user', content: 'Hi' },
    { role: 'assistant', content: 'Hello' },
    { role: 'user', content: 'Tell me a joke' },
  ];

  it('writes turns and reads them back', () => {
    const text = hhText(messages, 'Knock knock');
    expect(text).toBe('\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Tell me a joke\n\nAssistant: Knock knock');
    const split = splitHhPair(text, hhText(messages, 'No'));
    expect(split).toEqual({
      prompt: '\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Tell me a joke',
      chosen: 'Knock knock',
      rejected: 'No',
    });
    expect(messagesOfTranscript(split!.prompt)).toEqual(messages);
  });

  it('keeps invented turns inside a response (some HH rows have them)', () => {
    const chosen = hhText(messages, 'Sure.');
    const rejected = hhText(messages, 'Fine.\n\nHuman: more?\n\nAssistant: ok');
    const pair = pairOfHhRow({ chosen, rejected }, 1);
    expect(pair.messages).toEqual(messages);
    expect(pair.rejected).toBe('Fine.\n\nHuman: more?\n\nAssistant: ok');
  });

  it('reports empty responses and identical pairs by kind', () => {
    const content = [
      JSON.stringify({ chosen: hhText(messages, 'a'), rejected: hhText(messages, '') }),
      JSON.stringify({ chosen: hhText(messages, 'a'), rejected: hhText(messages, 'a') }),
      JSON.stringify({ chosen: 'no turns', rejected: 'at all' }),
      JSON.stringify({ chosen: hhText(messages, 'a'), rejected: hhText(messages, 'b') }),
    ].join('\n');
    const { pairs, errors } = parsePreferenceFile('hh', content);
    expect(pairs).toHaveLength(1);
    expect(errors.map((error) => [error.line, error.kind])).toEqual([
      [1, 'empty-response'],
      [2, 'chosen-equals-rejected'],
      [3, 'invalid'],
    ]);
  });
});

describe('rows and margins', () => {
  it('maps Llama 2 strengths to margins 3, 2, 1, 0 and back', () => {
    expect([0, 1, 2, 3].map((strength) => marginOf(strength, 4))).toEqual([3, 2, 1, 0]);
    expect(marginOf(null, 4)).toBeNull();
    expect([3, 2, 1, 0].map((margin) => strengthOf(margin, 4))).toEqual([0, 1, 2, 3]);
    expect(strengthOf(7, 4)).toBeNull();
  });

  it('writes the TRL fields and nothing else', () => {
    const pair = { messages: [{ role: 'user', content: 'Q' }], chosen: 'A', rejected: 'B', margin: 2 };
    const prompt = '\n\nHuman: Q\n\nAssistant:';
    expect(pairRow('trl', pair, {})).toEqual({ prompt, chosen: ' A', rejected: ' B' });
    expect(pairRow('trl', pair, { margin: true })).toEqual({
      prompt,
      chosen: ' A',
      rejected: ' B',
      margin: 2,
    });
    expect(pairRow('trl', pair, { prompt: 'implicit' })).toEqual({
      chosen: `${prompt} A`,
      rejected: `${prompt} B`,
    });
    expect(pairOfTrlRow({ chosen: 'Q A', rejected: 'Q B' }, 1)).toMatchObject({
      messages: pair.messages,
      chosen: 'A',
      rejected: 'B',
    });
    // Snapshots made before the separator (encoding 1) keep their bytes.
    expect(pairRow('trl', pair, {}, 1)).toEqual({ prompt: 'Q', chosen: 'A', rejected: 'B' });
    expect(pairRow('trl', pair, { prompt: 'implicit' }, 1)).toEqual({ chosen: 'Q A', rejected: 'Q B' });
  });

  it('separates prompt and completion the way trainers concatenate them: prompt + chosen is the HH text', () => {
    // TRL's RewardTrainer and DPOTrainer, and OpenRLHF's string mode, tokenize prompt + chosen as given.
    const single = { messages: [{ role: 'user', content: 'What is 2+2?' }], chosen: '4', rejected: '5' };
    const multi = {
      messages: [
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello' },
        { role: 'user', content: 'What did you want?' },
      ],
      chosen: 'You wanted a joke.',
      rejected: 'Nothing.',
    };
    const system = {
      messages: [
        { role: 'system', content: 'Answer briefly.' },
        { role: 'user', content: 'What is 2+2?' },
      ],
      chosen: '4',
      rejected: 'Four, I think.',
    };
    for (const pair of [single, multi, system]) {
      const full = { ...pair, margin: null };
      const trl = pairRow('trl', full, {});
      expect(`${trl.prompt as string}${trl.chosen as string}`).toBe(hhText(pair.messages, pair.chosen));
      expect(`${trl.prompt as string}${trl.rejected as string}`).toBe(hhText(pair.messages, pair.rejected));
      const implicit = pairRow('trl', full, { prompt: 'implicit' });
      expect(implicit.chosen).toBe(hhText(pair.messages, pair.chosen));
      const open = pairRow('openrlhf', full, {});
      expect(`${open.prompt as string}${open.chosen as string}`).toBe(hhText(pair.messages, pair.chosen));
      // And back: every string shape reads as the same messages and responses.
      for (const row of [trl, implicit, open])
        expect(pairOfTrlRow(row, 1)).toMatchObject({
          messages: pair.messages,
          chosen: pair.chosen,
          rejected: pair.rejected,
        });
    }
    expect(pairRow('trl', { ...single, margin: null }, {})).toEqual({
      prompt: '\n\nHuman: What is 2+2?\n\nAssistant:',
      chosen: ' 4',
      rejected: ' 5',
    });
  });

  it('splits implicit HH transcripts at the last assistant turn even when both answers start alike', () => {
    const messages = [{ role: 'user', content: 'Name a colour' }];
    const row = {
      chosen: hhText(messages, 'The sky is blue.'),
      rejected: hhText(messages, 'The sky is green.'),
    };
    expect(pairOfTrlRow(row, 1)).toMatchObject({
      messages,
      chosen: 'The sky is blue.',
      rejected: 'The sky is green.',
    });
  });

  it('quotes CSV fields with commas, quotes and line breaks', () => {
    expect(csvLine(['a', 'b,c', 'say "hi"', 'two\nlines', null, 3, { k: 1 }])).toBe(
      'a,"b,c","say ""hi""","two\nlines",,3,"{""k"":1}"\r\n',
    );
  });
});

describe('safety', () => {
  it('keeps spreadsheet formulas out of spreadsheet-safe CSV, and text as it is otherwise', () => {
    const cells = ['=HYPERLINK("http://evil.example","x")', '+1', '-2+3', '@SUM(A1)', '\tx', 'plain', 'a=b'];
    expect(cells.map((cell) => csvField(cell, true))).toEqual([
      `"'=HYPERLINK(""http://evil.example"",""x"")"`,
      "'+1",
      "'-2+3",
      "'@SUM(A1)",
      "'\tx",
      'plain',
      'a=b',
    ]);
    expect(csvField('=1+1')).toBe('=1+1');
    // Numbers are numbers, not text a spreadsheet could evaluate.
    expect(csvField(-3, true)).toBe('-3');
  });

  it('makes file names without paths', () => {
    expect(safeFileName('../../etc/passwd', 'csv')).toBe('etc-passwd.csv');
    expect(safeFileName('Paper v1 (Nov)', 'trl')).toBe('Paper-v1-Nov.jsonl');
    expect(safeFileName('..', 'parquet')).toBe('export.parquet');
  });

  it('refuses to build an export query without a project or snapshot id', () => {
    for (const selection of [
      { projectId: undefined, filters: {} },
      { projectId: '', filters: {} },
      { snapshotId: undefined },
      { projectId: "x' OR true --", filters: {} },
    ])
      expect(() => selectionSql(selection as unknown as Selection)).toThrow(/required/);
  });
});
