package io.peft4j.nn;

import static io.peft4j.kernels.TransformerReference.attention;
import static io.peft4j.kernels.TransformerReference.attentionBackward;
import static io.peft4j.kernels.TransformerReference.layerNorm;
import static io.peft4j.kernels.TransformerReference.layerNormBackward;
import static io.peft4j.kernels.TransformerReference.linear;

import io.peft4j.kernels.Reference;
import java.util.HashMap;
import java.util.Map;

/**
 * A float64 BERT written from the formulas, parameters keyed by Hugging Face's names: embeddings
 * (word + position + token type, LayerNorm), post-norm layers with a key padding mask, mean
 * pooling over real tokens, optional L2 normalisation, a classifier; and its backward, by hand
 * (checked against central differences in {@link BertModelTest}). The word table's [PAD] row gets
 * no gradient (torch's padding_idx), the other tables get every position's.
 */
final class BertReference {
    final BertConfig c;
    final Map<String, double[]> p;
    final int b, t;
    final int[] ids, types, lengths;
    final int n, hd;
    // forward intermediates, per layer
    double[] emb, x0;
    double[][] xIn, q, k, v, att, pre1, h, f1, act, pre2, xOut;
    double[] pooled, normalized, logits;
    double norm[];

    BertReference(BertConfig c, Map<String, double[]> p, int b, int t, int[] ids, int[] types, int[] lengths) {
        this.c = c;
        this.p = p;
        this.b = b;
        this.t = t;
        this.ids = ids;
        this.types = types;
        this.lengths = lengths;
        this.n = b * t;
        this.hd = c.hidden();
    }

    private double[] w(String name) {
        double[] a = p.get(name);
        if (a == null) throw new IllegalArgumentException("reference: no parameter " + name);
        return a;
    }

    /** The last hidden state [b·t, hidden]. */
    double[] hidden() {
        int H = hd, L = c.layers(), I = c.intermediate(), heads = c.heads(), dh = H / heads;
        double eps = c.layerNormEps();
        emb = new double[n * H];
        double[] word = w("embeddings.word_embeddings.weight"), pos = w("embeddings.position_embeddings.weight"),
                type = w("embeddings.token_type_embeddings.weight");
        for (int r = 0; r < n; r++)
            for (int j = 0; j < H; j++) emb[r * H + j] = word[ids[r] * H + j] + pos[(r % t) * H + j] + type[types[r] * H + j];
        x0 = layerNorm(n, H, eps, emb, w("embeddings.LayerNorm.weight"), w("embeddings.LayerNorm.bias"));
        xIn = new double[L][]; q = new double[L][]; k = new double[L][]; v = new double[L][]; att = new double[L][];
        pre1 = new double[L][]; h = new double[L][]; f1 = new double[L][]; act = new double[L][]; pre2 = new double[L][]; xOut = new double[L][];
        double[] x = x0;
        for (int l = 0; l < L; l++) {
            String pre = "encoder.layer." + l + ".";
            xIn[l] = x;
            q[l] = linear(x, n, H, H, w(pre + "attention.self.query.weight"), w(pre + "attention.self.query.bias"));
            k[l] = linear(x, n, H, H, w(pre + "attention.self.key.weight"), w(pre + "attention.self.key.bias"));
            v[l] = linear(x, n, H, H, w(pre + "attention.self.value.weight"), w(pre + "attention.self.value.bias"));
            att[l] = attention(b, t, heads, dh, 1 / Math.sqrt(dh), false, lengths, q[l], k[l], v[l])[0];
            double[] ao = linear(att[l], n, H, H, w(pre + "attention.output.dense.weight"), w(pre + "attention.output.dense.bias"));
            pre1[l] = new double[n * H];
            for (int i = 0; i < pre1[l].length; i++) pre1[l][i] = ao[i] + x[i];
            h[l] = layerNorm(n, H, eps, pre1[l], w(pre + "attention.output.LayerNorm.weight"), w(pre + "attention.output.LayerNorm.bias"));
            f1[l] = linear(h[l], n, H, I, w(pre + "intermediate.dense.weight"), w(pre + "intermediate.dense.bias"));
            act[l] = new double[f1[l].length];
            for (int i = 0; i < act[l].length; i++) act[l][i] = Reference.gelu(f1[l][i]);
            double[] o = linear(act[l], n, I, H, w(pre + "output.dense.weight"), w(pre + "output.dense.bias"));
            pre2[l] = new double[n * H];
            for (int i = 0; i < pre2[l].length; i++) pre2[l][i] = o[i] + h[l][i];
            x = xOut[l] = layerNorm(n, H, eps, pre2[l], w(pre + "output.LayerNorm.weight"), w(pre + "output.LayerNorm.bias"));
        }
        return x;
    }

    /** Mean of each sequence's real rows [b, hidden], then L2-normalised when asked (eps 1e-12). */
    double[] pool(double[] hid, boolean normalize) {
        pooled = new double[b * hd];
        for (int s = 0; s < b; s++)
            for (int i = 0; i < lengths[s]; i++)
                for (int j = 0; j < hd; j++) pooled[s * hd + j] += hid[(s * t + i) * hd + j] / lengths[s];
        if (!normalize) return pooled;
        normalized = new double[b * hd];
        norm = new double[b];
        for (int s = 0; s < b; s++) {
            double ss = 0;
            for (int j = 0; j < hd; j++) ss += pooled[s * hd + j] * pooled[s * hd + j];
            norm[s] = Math.max(Math.sqrt(ss), 1e-12);
            for (int j = 0; j < hd; j++) normalized[s * hd + j] = pooled[s * hd + j] / norm[s];
        }
        return normalized;
    }

    double[] logits(int classes, boolean normalize) {
        double[] e = pool(hidden(), normalize);
        return logits = linear(e, b, hd, classes, w("classifier.weight"), w("classifier.bias"));
    }

    /** Gradients of Σ g ⊙ logits, by parameter name (after {@link #logits}). */
    Map<String, double[]> logitsBackward(int classes, boolean normalize, double[] g) {
        Map<String, double[]> grads = new HashMap<>();
        double[] e = normalize ? normalized : pooled;
        double[] dw = new double[classes * hd], db = new double[classes], de = new double[b * hd];
        double[] cw = w("classifier.weight");
        for (int s = 0; s < b; s++)
            for (int o = 0; o < classes; o++) {
                db[o] += g[s * classes + o];
                for (int j = 0; j < hd; j++) {
                    dw[o * hd + j] += g[s * classes + o] * e[s * hd + j];
                    de[s * hd + j] += g[s * classes + o] * cw[o * hd + j];
                }
            }
        grads.put("classifier.weight", dw);
        grads.put("classifier.bias", db);
        double[] dp = de;
        if (normalize) {
            dp = new double[b * hd];
            for (int s = 0; s < b; s++) {
                double dot = 0;
                for (int j = 0; j < hd; j++) dot += normalized[s * hd + j] * de[s * hd + j];
                for (int j = 0; j < hd; j++) dp[s * hd + j] = (de[s * hd + j] - normalized[s * hd + j] * dot) / norm[s];
            }
        }
        double[] dh = new double[n * hd];
        for (int s = 0; s < b; s++)
            for (int i = 0; i < lengths[s]; i++)
                for (int j = 0; j < hd; j++) dh[(s * t + i) * hd + j] = dp[s * hd + j] / lengths[s];
        grads.putAll(hiddenBackward(dh));
        return grads;
    }

    /** Gradients of Σ g ⊙ hidden(), by parameter name (after {@link #hidden}). */
    Map<String, double[]> hiddenBackward(double[] g) {
        int H = hd, L = c.layers(), I = c.intermediate(), heads = c.heads(), dh = H / heads;
        double eps = c.layerNormEps();
        Map<String, double[]> grads = new HashMap<>();
        double[] dx = g;
        for (int l = L - 1; l >= 0; l--) {
            String pre = "encoder.layer." + l + ".";
            double[][] ln2 = layerNormBackward(n, H, eps, pre2[l], w(pre + "output.LayerNorm.weight"), dx);
            grads.put(pre + "output.LayerNorm.weight", ln2[1]);
            grads.put(pre + "output.LayerNorm.bias", ln2[2]);
            double[] dact = linearBackward(grads, pre + "output.dense", act[l], I, H, ln2[0]);
            double[] df1 = new double[dact.length];
            for (int i = 0; i < df1.length; i++) df1[i] = dact[i] * Reference.geluGrad(f1[l][i]);
            double[] dhid = linearBackward(grads, pre + "intermediate.dense", h[l], H, I, df1);
            for (int i = 0; i < dhid.length; i++) dhid[i] += ln2[0][i];
            double[][] ln1 = layerNormBackward(n, H, eps, pre1[l], w(pre + "attention.output.LayerNorm.weight"), dhid);
            grads.put(pre + "attention.output.LayerNorm.weight", ln1[1]);
            grads.put(pre + "attention.output.LayerNorm.bias", ln1[2]);
            double[] datt = linearBackward(grads, pre + "attention.output.dense", att[l], H, H, ln1[0]);
            double[][] dqkv = attentionBackward(b, t, heads, dh, 1 / Math.sqrt(dh), false, lengths, q[l], k[l], v[l], datt);
            double[] dxi = linearBackward(grads, pre + "attention.self.query", xIn[l], H, H, dqkv[0]);
            double[] dxk = linearBackward(grads, pre + "attention.self.key", xIn[l], H, H, dqkv[1]);
            double[] dxv = linearBackward(grads, pre + "attention.self.value", xIn[l], H, H, dqkv[2]);
            for (int i = 0; i < dxi.length; i++) dxi[i] += dxk[i] + dxv[i] + ln1[0][i];
            dx = dxi;
        }
        double[][] ln0 = layerNormBackward(n, H, eps, emb, w("embeddings.LayerNorm.weight"), dx);
        grads.put("embeddings.LayerNorm.weight", ln0[1]);
        grads.put("embeddings.LayerNorm.bias", ln0[2]);
        double[] dword = new double[c.vocabSize() * H], dpos = new double[c.maxPositions() * H], dtype = new double[c.typeVocabSize() * H];
        for (int r = 0; r < n; r++)
            for (int j = 0; j < H; j++) {
                if (ids[r] != BertModel.PAD_ID) dword[ids[r] * H + j] += ln0[0][r * H + j];
                dpos[(r % t) * H + j] += ln0[0][r * H + j];
                dtype[types[r] * H + j] += ln0[0][r * H + j];
            }
        grads.put("embeddings.word_embeddings.weight", dword);
        grads.put("embeddings.position_embeddings.weight", dpos);
        grads.put("embeddings.token_type_embeddings.weight", dtype);
        return grads;
    }

    /** y = x·wᵀ + b backward: puts dw, db under name; returns dx. x: [n, in], g: [n, out]. */
    private double[] linearBackward(Map<String, double[]> grads, String name, double[] x, int in, int out, double[] g) {
        double[] wt = w(name + ".weight"), dw = new double[out * in], db = new double[out], dx = new double[n * in];
        for (int r = 0; r < n; r++)
            for (int o = 0; o < out; o++) {
                double gv = g[r * out + o];
                db[o] += gv;
                for (int i = 0; i < in; i++) {
                    dw[o * in + i] += gv * x[r * in + i];
                    dx[r * in + i] += gv * wt[o * in + i];
                }
            }
        grads.put(name + ".weight", dw);
        grads.put(name + ".bias", db);
        return dx;
    }
}
