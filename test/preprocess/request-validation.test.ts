import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { testConfig } from '../../src/config.js';
import { validateCaptioning, validateSourceSyntax } from '../../src/preprocess/index.js';

const config = testConfig('/tmp/kiln-unused', { sourceRoots: ['/srv/photos'] });

describe('create-time validation', () => {
  it('accepts every allowed kind of source', () => {
    assert.deepEqual(
      validateSourceSyntax(
        [
          'https://example.com/a.jpg',
          'http://example.com/b.zip',
          '/srv/photos/c.jpg',
          'file:///srv/photos/d.jpg',
          'data:image/png;base64,iVBORw0KGgo=',
          'upload://abcdefghijklmnop',
        ],
        config,
      ),
      [],
    );
  });

  it('names each bad entry by index', () => {
    const issues = validateSourceSyntax(
      ['ftp://example.com/a.jpg', '/etc/passwd', '/srv/photos/../../etc/passwd', 'data:text/html;base64,PGh0bWw+', 'upload://../x', 'relative/path.jpg', 'https://'],
      config,
    );
    assert.deepEqual(
      issues.map((i) => [i.loc.join('.'), i.msg]),
      [
        ['body.source_images.0', 'source uses ftp:, which is not allowed; use http, https, file, data or upload'],
        ['body.source_images.1', 'path is outside the allowed source roots (KILN_SOURCE_ROOTS)'],
        ['body.source_images.2', 'path is outside the allowed source roots (KILN_SOURCE_ROOTS)'],
        ['body.source_images.3', 'source is a data: URI of text/html; only images and zip archives are accepted'],
        ['body.source_images.4', 'source is not a valid upload reference (upload://<id>)'],
        ['body.source_images.5', 'source is neither a URL nor an absolute path'],
        ['body.source_images.6', 'source is not a valid URL'],
      ],
    );
    assert.match(validateSourceSyntax(['/srv/photos/a.jpg'], testConfig('/tmp/x'))[0].msg, /KILN_SOURCE_ROOTS is empty/);
    assert.equal(validateSourceSyntax([], config)[0].type, 'too_short');
  });

  it('vlm needs KILN_VLM_URL or KILN_VLM_MODEL', () => {
    const [issue] = validateCaptioning('vlm', null, config);
    assert.deepEqual(issue.loc, ['body', 'preprocessing_captioning_strategy']);
    assert.match(issue.msg, /neither KILN_VLM_URL nor KILN_VLM_MODEL/);
    assert.deepEqual(validateCaptioning('vlm', null, { ...config, vlm: { url: 'http://vlm:8000/v1/chat/completions', model: '', apiKey: '' } }), []);
    assert.deepEqual(validateCaptioning('template', 'a photo of [trigger]', config), []);
    assert.deepEqual(validateCaptioning(null, null, config), []);
    assert.equal(validateCaptioning('magic', null, config)[0].type, 'literal_error');
  });
});
