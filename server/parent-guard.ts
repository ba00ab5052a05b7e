// Loaded into the trainer worker that the server runs alongside itself (node --import): when the
// server is gone, even killed outright (which runs none of its handlers), the IPC channel closes and
// the worker stops itself as on SIGTERM, instead of running on without a server.
if (process.send) {
  process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));
  // The channel alone does not keep the worker alive.
  process.channel?.unref();
}

export {};
