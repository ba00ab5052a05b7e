// Reading a file a user picked for import: its text, unpacked in the browser when it is gzipped
// (datasets such as HH-RLHF ship as .gz), and its name without the .gz for format detection.

export interface PickedFile {
  /** The file's name without a trailing .gz. */
  name: string;
  text: string;
  /** Bytes of the text after unpacking, or null when the file was not gzipped. */
  unpackedBytes: number | null;
}

/** Reads a picked file; throws an Error with a message for the user when it cannot. */
export async function readPickedFile(file: File): Promise<PickedFile> {
  const gzipped = /\.gz$/i.test(file.name);
  const name = file.name.replace(/\.gz$/i, '');
  try {
    const text = gzipped
      ? await new Response(file.stream().pipeThrough(new DecompressionStream('gzip'))).text()
      : await file.text();
    return { name, text, unpackedBytes: gzipped ? new TextEncoder().encode(text).length : null };
  } catch {
    throw new Error(gzipped ? 'The file could not be unpacked: is it gzip?' : 'The file could not be read.');
  }
}
