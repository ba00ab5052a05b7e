// What a failed request or action says to the user: the error's own message (the API's errors carry
// one written for people), else a plain sentence.

export function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  return 'Something went wrong.';
}
