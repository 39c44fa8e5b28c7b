/** Which page is up and whether its first data has loaded: for people's scripts and the browser tests. */
export function markReady(page: string, ready: boolean): void {
  document.body.dataset.page = page;
  document.body.dataset.ready = ready ? '1' : '0';
}
