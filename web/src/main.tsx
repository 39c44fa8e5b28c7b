import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { adoptTokenFromFragment, claims, clearToken, setToken, token } from './auth';
import { markReady } from './ready';
import { onLinkClick, useRoute } from './router';
import { TaskList } from './pages/task-list';
import { TaskPage } from './pages/task-page';
import { NewTask } from './pages/new-task';
import { Generate } from './pages/generate';
import { Usage } from './pages/usage';
import './styles.css';

adoptTokenFromFragment();

function SignIn({ onSignedIn }: { onSignedIn: () => void }) {
  useEffect(() => markReady('sign-in', true), []);
  return (
    <main class="narrow">
      <h1>Sign in to Kiln</h1>
      <form
        id="sign-in"
        onSubmit={(e) => {
          e.preventDefault();
          const value = new FormData(e.currentTarget).get('token');
          if (typeof value === 'string' && value.trim()) {
            setToken(value);
            onSignedIn();
          }
        }}
      >
        <label>
          Bearer token (a JWT)
          <textarea name="token" rows={4} required autoComplete="off" spellcheck={false} />
        </label>
        <p class="muted">
          <code>make run</code> prints a link that signs in with the local admin token; <code>./kiln token --tenant &lt;name&gt;</code> mints others. The token stays in this tab.
        </p>
        <button type="submit">Sign in</button>
      </form>
    </main>
  );
}

function App() {
  const [signedIn, setSignedIn] = useState(() => token() !== null);
  const route = useRoute();
  useEffect(() => {
    const out = () => setSignedIn(false);
    window.addEventListener('kiln:signed-out', out);
    return () => window.removeEventListener('kiln:signed-out', out);
  }, []);
  if (!signedIn) return <SignIn onSignedIn={() => setSignedIn(true)} />;
  const who = claims();
  return (
    <>
      <header>
        <nav aria-label="Main">
          <a href="/" class="brand">
            Kiln
          </a>
          <a href="/" aria-current={route.page === 'list' ? 'page' : undefined}>
            Tasks
          </a>
          <a href="/new" aria-current={route.page === 'new' ? 'page' : undefined}>
            New task
          </a>
          <a href="/generate" aria-current={route.page === 'generate' ? 'page' : undefined}>
            Generate
          </a>
          <a href="/usage" aria-current={route.page === 'usage' ? 'page' : undefined}>
            Usage
          </a>
          <a href="/docs" class="push">
            API docs
          </a>
        </nav>
        <span class="muted who">
          {who.tenant ?? 'no tenant'}
          {who.admin ? ' · admin' : ''}
        </span>
        <button type="button" class="link" onClick={() => clearToken()}>
          Sign out
        </button>
      </header>
      {route.page === 'list' && <TaskList admin={who.admin} />}
      {route.page === 'task' && <TaskPage key={route.id} id={route.id} />}
      {route.page === 'new' && <NewTask />}
      {route.page === 'generate' && <Generate />}
      {route.page === 'usage' && <Usage />}
    </>
  );
}

document.addEventListener('click', onLinkClick);
render(<App />, document.getElementById('app')!);
