package io.peft4j.peft;

import static io.peft4j.variants.TestSupport.U;
import static io.peft4j.variants.TestSupport.abs;
import static io.peft4j.variants.TestSupport.assertBitEqual;
import static io.peft4j.variants.TestSupport.assertWithin;
import static io.peft4j.variants.TestSupport.backend;
import static io.peft4j.variants.TestSupport.bounds;
import static io.peft4j.variants.TestSupport.mul;
import static io.peft4j.variants.TestSupport.randomizeAdapter;
import static io.peft4j.variants.TestSupport.rng;
import static io.peft4j.variants.TestSupport.toDouble;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.nn.Linear;
import io.peft4j.nn.Parameter;
import io.peft4j.variants.TestSupport;
import io.peft4j.variants.lora.LoraConfig;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Two LoRA adapters merged into the same layers: unmerging one must leave W0 + the other's ΔW
 * (this is the only path on which {@link Adapter#unmerge} subtracts), unmerging the last one
 * must restore W0 bit for bit. Every weight is compared with float64 W0 + s·B·A.
 */
class MultiAdapterMergeTest {
    private static final String FIRST = PeftModel.DEFAULT_ADAPTER;
    private static final String SECOND = "second";
    // Different ranks and scalings, so a mix-up of the two adapters cannot go unnoticed.
    private static final LoraConfig FIRST_CONFIG =
            LoraConfig.builder().r(4).alpha(8).targetModules(TargetModules.allLinear()).build();
    // fc3 carries only the first adapter.
    private static final LoraConfig SECOND_CONFIG =
            LoraConfig.builder().r(3).alpha(5).targetModules(TargetModules.names("fc1", "fc2")).build();

    /** The model, its W0 per layer, and each adapter's float64 ΔW = s·B·A (with |s|·|B|·|A|) per layer. */
    private record Setup(PeftModel pm, Map<String, float[]> w0, Map<String, Map<String, double[][]>> delta) {}

    private static Setup setup(String seedName) {
        SplittableRandom r = rng(seedName);
        PeftModel pm = PeftModel.wrap(TestSupport.mlp(7), FIRST_CONFIG, backend(), 3);
        pm.addAdapter(SECOND, SECOND_CONFIG, 11);
        // LoRA starts with B = 0 (ΔW = 0), which would hide any merge bug: give both factors values.
        randomizeAdapter(pm, FIRST, r, 0.4);
        randomizeAdapter(pm, SECOND, r, 0.4);
        Map<String, float[]> w0 = new LinkedHashMap<>();
        TestSupport.linears(pm.baseModel()).forEach((path, l) -> w0.put(path, l.weight().value().toFloatArray()));
        Map<String, Map<String, double[][]>> delta = new LinkedHashMap<>();
        for (String name : List.of(FIRST, SECOND)) {
            Map<String, double[][]> perLayer = new LinkedHashMap<>();
            pm.adaptedLayers(name).forEach((path, l) -> perLayer.put(path, deltaReference(l, name)));
            delta.put(name, perLayer);
        }
        assertEquals(List.of("fc1", "fc2", "fc3"), List.copyOf(delta.get(FIRST).keySet()));
        assertEquals(List.of("fc1", "fc2"), List.copyOf(delta.get(SECOND).keySet()));
        return new Setup(pm, w0, delta);
    }

    /** {ΔW, |s|·|B|·|A|} in float64 from the adapter's own parameters. */
    private static double[][] deltaReference(Linear l, String name) {
        Adapter a = l.adapter(name);
        Map<String, double[]> p = TestSupport.adapterValues(a);
        double[] aw = p.get("lora_A.weight");
        double[] bw = p.get("lora_B.weight");
        int rank = ((LoraConfig) a.config()).r();
        int in = (int) l.inFeatures();
        int out = (int) l.outFeatures();
        double s = ((LoraConfig) a.config()).scaling();
        double[] d = mul(bw, aw, out, rank, in);
        double[] mag = mul(abs(bw), abs(aw), out, rank, in);
        for (int i = 0; i < d.length; i++) {
            d[i] *= s;
            mag[i] *= Math.abs(s);
        }
        return new double[][]{d, mag};
    }

    /** Every layer's weight is W0 plus the ΔW of exactly the listed adapters (those it carries). */
    private static void assertWeights(Setup st, List<String> merged, String what) {
        TestSupport.linears(st.pm().baseModel()).forEach((path, l) -> assertWeight(st, path, l, merged, what));
    }

    private static void assertWeight(Setup st, String path, Linear l, List<String> merged, String what) {
        double[] ref = toDouble(st.w0().get(path));
        double[] mag = abs(ref);
        int applied = 0;
        for (String name : merged) {
            double[][] d = st.delta().get(name).get(path);
            if (d == null) continue;
            applied++;
            for (int i = 0; i < ref.length; i++) {
                ref[i] += d[0][i];
                mag[i] += d[1][i];
            }
        }
        float[] w = l.weight().value().toFloatArray();
        if (applied == 0) {
            assertBitEqual(st.w0().get(path), w, what + ": " + path + " is back to W0");
        } else {
            // a rank-r GEMM (r ≤ 4) plus up to three fp32 additions/subtractions of W-sized values
            assertWithin(ref, w, bounds(mag, 16 * U, 0), what + ": " + path);
            assertTrue(TestSupport.differs(st.w0().get(path), w), what + ": " + path + " must differ from W0");
        }
    }

    private static void mergeActive(Setup st, String name) {
        st.pm().setActiveAdapter(name);
        st.pm().merge();
        st.pm().adaptedLayers(name).values().forEach(l -> assertTrue(l.isMerged(name), l.path()));
    }

    private static void unmergeActive(Setup st, String name) {
        st.pm().setActiveAdapter(name);
        st.pm().unmerge();
        st.pm().adaptedLayers(name).values().forEach(l -> assertFalse(l.isMerged(name), l.path()));
    }

    @Test
    void unmergingTheLastMergedAdapterFirstLeavesTheOther() {
        Setup st = setup("multi merge, unmerge last first");
        mergeActive(st, FIRST);
        assertWeights(st, List.of(FIRST), "first merged");
        mergeActive(st, SECOND);
        assertWeights(st, List.of(FIRST, SECOND), "both merged");
        unmergeActive(st, SECOND);
        assertWeights(st, List.of(FIRST), "second unmerged, first still merged");
        unmergeActive(st, FIRST);
        assertWeights(st, List.of(), "both unmerged");
    }

    @Test
    void unmergingTheFirstMergedAdapterFirstLeavesTheOther() {
        Setup st = setup("multi merge, unmerge first first");
        mergeActive(st, FIRST);
        mergeActive(st, SECOND);
        unmergeActive(st, FIRST);
        assertWeights(st, List.of(SECOND), "first unmerged, second still merged");
        unmergeActive(st, SECOND);
        assertWeights(st, List.of(), "both unmerged");
    }

    /** After a full unmerge the saved copy of W0 is gone; a new merge cycle must save the current W0 again. */
    @Test
    void aSecondCycleStartsFromTheRestoredWeights() {
        Setup st = setup("multi merge, two cycles");
        mergeActive(st, SECOND);
        mergeActive(st, FIRST);
        unmergeActive(st, SECOND);
        assertWeights(st, List.of(FIRST), "cycle 1: first still merged");
        unmergeActive(st, FIRST);
        assertWeights(st, List.of(), "cycle 1 done");
        mergeActive(st, SECOND);
        mergeActive(st, FIRST);
        assertWeights(st, List.of(FIRST, SECOND), "cycle 2: both merged");
        unmergeActive(st, FIRST);
        unmergeActive(st, SECOND);
        assertWeights(st, List.of(), "cycle 2 done");
    }

    /** Deleting a merged adapter unmerges it; the other one stays folded in. */
    @Test
    void deletingOneMergedAdapterKeepsTheOtherMerged() {
        Setup st = setup("multi merge, delete");
        mergeActive(st, FIRST);
        mergeActive(st, SECOND);
        st.pm().deleteAdapter(FIRST);
        assertEquals(SECOND, st.pm().activeAdapter());
        assertWeights(st, List.of(SECOND), "first deleted");
        unmergeActive(st, SECOND);
        assertWeights(st, List.of(), "second unmerged after the delete");
    }

    /**
     * A merged adapter removed from a layer stays folded into W, so the saved W0 is stale: unmerging
     * the other adapter must subtract its ΔW, not restore W0. The removed adapter's tensors are freed.
     */
    @Test
    void removingAMergedAdapterKeepsItsDeltaFolded() {
        Setup st = setup("multi merge, remove merged");
        Linear fc1 = st.pm().adaptedLayers(SECOND).get("fc1");
        fc1.merge(backend(), FIRST);
        fc1.merge(backend(), SECOND);
        List<Parameter> removed = fc1.adapter(FIRST).parameters();
        fc1.removeAdapter(FIRST);
        removed.forEach(p -> assertFalse(p.value().isAlive(), p.name() + " of the removed adapter is closed"));
        assertEquals(List.of(SECOND), List.copyOf(fc1.adapters().keySet()));
        fc1.unmerge(backend(), SECOND);
        assertWeight(st, "fc1", fc1, List.of(FIRST), "first removed while merged, second unmerged");
    }

    /** A layer's first adapter is active until removed; then the next one in insertion order is. */
    @Test
    void layerKeepsItsFirstAdapterActiveUntilRemoved() {
        Linear l = new Linear(backend(), 6, 5, true, 1);
        for (String n : List.of("a", "b", "c")) l.addAdapter(FIRST_CONFIG.create(l, n, backend(), n.hashCode()));
        assertEquals("a", l.activeAdapter());
        l.removeAdapter("b");
        assertEquals("a", l.activeAdapter(), "removing an inactive adapter keeps the active one");
        l.removeAdapter("a");
        assertEquals("c", l.activeAdapter());
        l.removeAdapter("c");
        assertNull(l.activeAdapter());
        l.close();
    }

    @Test
    void layerRefusesADoubleMergeOrAnUnmergeOfAnUnmergedAdapter() {
        Setup st = setup("multi merge, refusals");
        Linear fc1 = st.pm().adaptedLayers(SECOND).get("fc1");
        fc1.merge(backend(), FIRST);
        IllegalStateException twice = assertThrows(IllegalStateException.class, () -> fc1.merge(backend(), FIRST));
        assertTrue(twice.getMessage().contains("'" + FIRST + "'") && twice.getMessage().contains("fc1")
                && twice.getMessage().contains("already merged"), twice.getMessage());
        IllegalStateException notMerged = assertThrows(IllegalStateException.class, () -> fc1.unmerge(backend(), SECOND));
        assertTrue(notMerged.getMessage().contains("'" + SECOND + "'") && notMerged.getMessage().contains("fc1")
                && notMerged.getMessage().contains("not merged"), notMerged.getMessage());
        IllegalArgumentException missing = assertThrows(IllegalArgumentException.class, () -> fc1.merge(backend(), "third"));
        assertTrue(missing.getMessage().contains("'third'") && missing.getMessage().contains("fc1"), missing.getMessage());
        fc1.unmerge(backend(), FIRST);
        assertBitEqual(st.w0().get("fc1"), fc1.weight().value().toFloatArray(), "fc1 back to W0");
    }
}
